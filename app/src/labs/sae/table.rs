//! The table of latents at the latest evaluation: firing density, mean activation and, for
//! planted features, the best-matching true feature and its cosine. Sorted by the user's
//! choice; the whole table exports as CSV.

use super::view::SaeRun;
use crate::download;
use leptos::prelude::*;
use mechlab_engine::metrics::sae::LatentRow;

/// Rows shown at once; the export has them all.
const SHOWN: usize = 100;

/// How the table is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Density,
    Activation,
    Cosine,
    Index,
}

impl Order {
    fn from_value(v: &str) -> Self {
        match v {
            "activation" => Order::Activation,
            "cosine" => Order::Cosine,
            "index" => Order::Index,
            _ => Order::Density,
        }
    }

    fn sort(self, rows: &mut [LatentRow]) {
        let cos = |r: &LatentRow| r.best_feature.map_or(f32::NEG_INFINITY, |b| b.1);
        match self {
            Order::Density => rows.sort_by(|a, b| b.density.total_cmp(&a.density)),
            Order::Activation => {
                rows.sort_by(|a, b| b.mean_activation.total_cmp(&a.mean_activation))
            }
            Order::Cosine => rows.sort_by(|a, b| cos(b).total_cmp(&cos(a))),
            Order::Index => rows.sort_by_key(|r| r.latent),
        }
    }
}

/// Decimals for a column of numbers, so every cell is written alike (`0.0020` beside `0.0500`,
/// never `1e-3` beside `0.002`): enough for two significant digits of its smallest non-zero
/// magnitude, at most six.
fn column_decimals(values: impl Iterator<Item = f32>) -> usize {
    let smallest = values
        .map(f32::abs)
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold(f32::INFINITY, f32::min);
    if smallest.is_finite() {
        (1 - smallest.log10().floor() as i32).clamp(1, 6) as usize
    } else {
        1
    }
}

/// The latent table.
#[component]
pub fn LatentTable(
    /// The page's record of the job.
    run: RwSignal<Option<SaeRun>>,
) -> impl IntoView {
    let order = RwSignal::new(Order::Density);
    // Only a new evaluation changes the table, not every chunk.
    let latest = Memo::new(move |_| run.with(|r| r.as_ref().and_then(|r| r.latest.clone())));
    let rows = Memo::new(move |_| {
        let mut rows = latest.with(|e| e.as_ref().map(|e| e.latents.clone()).unwrap_or_default());
        order.get().sort(&mut rows);
        rows.truncate(SHOWN);
        rows
    });
    let density_decimals =
        Memo::new(move |_| rows.with(|r| column_decimals(r.iter().map(|r| r.density))));
    let activation_decimals =
        Memo::new(move |_| rows.with(|r| column_decimals(r.iter().map(|r| r.mean_activation))));
    let has_truth = Memo::new(move |_| {
        latest.with(|e| e.as_ref().is_some_and(|e| e.metrics.ground_truth.is_some()))
    });
    let count = move || latest.with(|e| e.as_ref().map_or(0, |e| e.latents.len()));
    let export = move |_| {
        let Some(e) = latest.get_untracked() else {
            return;
        };
        let mut out = String::from("latent,density,mean_activation,best_feature,cosine\n");
        for r in &e.latents {
            let (f, c) = r
                .best_feature
                .map_or((String::new(), String::new()), |(f, c)| {
                    (f.to_string(), c.to_string())
                });
            out += &format!("{},{},{},{f},{c}\n", r.latent, r.density, r.mean_activation);
        }
        download::text("mechlab-sae-latents.csv", "text/csv", &out);
    };
    view! {
        <figure class="chart latents" id="sae-latents-panel">
            <figcaption>
                <h2>"Latents"</h2>
                <div class="exports">
                    <label class="inline">
                        "sort by "
                        <select
                            id="latent-order"
                            on:change=move |ev| order.set(Order::from_value(&event_target_value(&ev)))
                        >
                            <option value="density">"density"</option>
                            <option value="activation">"mean activation"</option>
                            <option value="cosine">"cosine to a true feature"</option>
                            <option value="index">"index"</option>
                        </select>
                    </label>
                    <button
                        id="latents-data"
                        class="small"
                        title="Download every latent's row"
                        disabled=move || latest.with(Option::is_none)
                        on:click=export
                    >
                        "CSV"
                    </button>
                </div>
            </figcaption>
            <p class="caption">
                {move || {
                    let n = count();
                    if n == 0 {
                        "At the latest evaluation; the table fills in after a second or so of training.".to_string()
                    } else {
                        format!("At the latest evaluation: the first {} of {n} latents.", n.min(SHOWN))
                    }
                }}
            </p>
            <div class="table-scroll">
                <table id="latent-table">
                    <thead>
                        <tr>
                            <th>"latent"</th>
                            <th>"density"</th>
                            <th>"mean activation"</th>
                            <th hidden=move || !has_truth.get()>"best true feature"</th>
                            <th hidden=move || !has_truth.get()>"cosine"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || rows.get()
                            key=|r| (r.latent, r.density.to_bits(), r.mean_activation.to_bits(), r.best_feature.map(|b| (b.0, b.1.to_bits())))
                            let:r
                        >
                            <tr class:dead=r.density == 0.0>
                                <td>{r.latent}</td>
                                <td>{move || format!("{:.*}", density_decimals.get(), r.density)}</td>
                                <td>{move || format!("{:.*}", activation_decimals.get(), r.mean_activation)}</td>
                                <td hidden=move || !has_truth.get()>
                                    {r.best_feature.map(|b| b.0.to_string()).unwrap_or_default()}
                                </td>
                                <td
                                    hidden=move || !has_truth.get()
                                    class:recovered=r.best_feature.is_some_and(|b| b.1 >= 0.9)
                                >
                                    {r.best_feature.map(|b| format!("{:.3}", b.1)).unwrap_or_default()}
                                </td>
                            </tr>
                        </For>
                    </tbody>
                </table>
            </div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::column_decimals;

    #[test]
    fn a_column_shares_its_decimals() {
        assert_eq!(column_decimals([0.5, 0.002, 0.0].into_iter()), 4);
        assert_eq!(column_decimals([0.000999].into_iter()), 5);
        assert_eq!(column_decimals([3.0, 12.5].into_iter()), 1);
        assert_eq!(column_decimals([0.0, f32::NAN].into_iter()), 1);
        assert_eq!(column_decimals([1e-9].into_iter()), 6);
    }
}
