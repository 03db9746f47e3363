//! What the sources that draw on the device share: one kernel over one table uploaded on first
//! use (the planted features, a toy model's `W`), its uniform block led by the batch's shape,
//! the stream's seed and the sample counter, and the check of the batch it writes. Each
//! source's file hosts its shader (`shaders/data/<source>.wgsl`) and is its CPU reference.

use crate::error::Result;
use crate::gpu::{Recording, Tensor, View};
use crate::kernels::{dim, elements, params, Kernel};

/// One source's draw of a batch.
pub(crate) struct Draw<'a> {
    /// The kernel's label and entry point.
    pub entry: &'static str,
    /// Its WGSL (rng.wgsl and the source's shader).
    pub wgsl: &'static str,
    /// The table it reads, as the host holds it.
    pub table: &'a [f32],
    /// Activations a row.
    pub width: usize,
    /// Features a sample is drawn over.
    pub n_features: usize,
    /// The data stream's key.
    pub seed: u32,
    /// Samples drawn before this batch: its first row's sample number.
    pub drawn: u64,
    /// The source's own words of the uniform block, after the shared six.
    pub rest: &'a [u32],
    /// One workgroup a row (else one invocation an element, 256 a workgroup).
    pub workgroup_per_row: bool,
}

/// Records `draw` of `rows` rows into `out`, uploading its table into `uploaded` the first
/// time. The uniform block is `[rows, width, n_features, seed, drawn low, drawn high, rest…]`.
pub(crate) async fn record_draw(
    rec: &mut Recording<'_>,
    out: View<'_>,
    rows: usize,
    draw: &Draw<'_>,
    uploaded: &mut Option<wgpu::Buffer>,
) -> Result<()> {
    let gpu = rec.gpu().clone();
    let (r, w, n) = (
        dim("rows", rows)?,
        dim("width", draw.width)?,
        dim("n_features", draw.n_features)?,
    );
    let len = elements("batch", &[r, w])?;
    Tensor::flat(&gpu, "batch", out, len)?;
    if uploaded.is_none() {
        *uploaded = Some(gpu.storage_from(draw.entry, draw.table)?);
    }
    let table = uploaded.as_ref().expect("uploaded above");
    let mut words = vec![
        r,
        w,
        n,
        draw.seed,
        draw.drawn as u32,
        (draw.drawn >> 32) as u32,
    ];
    words.extend_from_slice(draw.rest);
    let storage = vec![View::from(table), out];
    let kern = Kernel::new(&gpu, draw.entry, "", draw.wgsl, storage, &[]).await?;
    let groups = if draw.workgroup_per_row {
        rows as u64
    } else {
        len.div_ceil(256)
    };
    kern.dispatch(rec, draw.entry, params(&words), groups).await
}

#[cfg(test)]
pub(crate) mod testing {
    //! The device's batches of a source against its host twin's.

    use crate::data::ActivationSource;
    use crate::gpu::{Gpu, Recorder};

    /// Two batches of `rows` drawn on the device by `dev` and two by `host` from the same
    /// counter: both sources must have moved on alike, and each element must agree to
    /// `tol · (1 + |host's|)`.
    pub async fn assert_device_matches_host(
        gpu: &Gpu,
        dev: &mut dyn ActivationSource,
        host: &mut dyn ActivationSource,
        rows: usize,
        tol: f32,
        label: &str,
    ) {
        let len = rows * dev.d_in();
        let outs = [0, 1].map(|_| gpu.storage_zeroed::<f32>("batch", len).unwrap());
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        for out in &outs {
            assert!(dev.record_batch(&mut rec, out.into(), rows).await.unwrap());
        }
        rec.submit();
        let mut got = gpu.read::<f32>(&outs[0], len).await.unwrap();
        got.extend(gpu.read::<f32>(&outs[1], len).await.unwrap());
        let mut want = vec![0.0; 2 * len];
        let (first, second) = want.split_at_mut(len);
        host.next_batch(first);
        host.next_batch(second);
        assert!(want.iter().any(|v| *v != 0.0), "{label}: an empty batch");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let bound = tol * (1.0 + w.abs());
            assert!((g - w).abs() <= bound, "{label}: element {i}: {g} vs {w}");
        }
        // The streams moved on alike: the next batch of each is the same.
        let (mut a, mut b) = (vec![0.0; len], vec![0.0; len]);
        dev.next_batch(&mut a);
        host.next_batch(&mut b);
        assert_eq!(
            a, b,
            "{label}: the device draw moved the stream on as the host's does"
        );
    }
}
