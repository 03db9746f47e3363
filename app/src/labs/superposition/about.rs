//! The Superposition lab's explanation.

use crate::components::about::{About, Cite};
use leptos::prelude::*;

/// What the lab shows, what to look for, and where it comes from.
pub fn about() -> impl IntoView {
    view! {
        <About id="about-superposition">
            <p>
                "A toy model of superposition ("
                <Cite href="https://transformer-circuits.pub/2022/toy_model/index.html">
                    "Elhage et al. 2022"
                </Cite>
                "): n features are squeezed into m < n hidden dimensions, h = Wx, and read back "
                "out as ReLU(Wᵀh + b). Each feature is active with the feature probability p "
                "(1 − p is its sparsity) and some matter more than others (importance). The "
                "model is trained to reconstruct the features, weighted by importance."
            </p>
            <p>
                "Dense features (p = 1) leave no room: the model keeps as many as it has "
                "dimensions and drops the rest. Sparse features rarely fire together, so the "
                "model can store more features than dimensions as nearly orthogonal directions "
                "and tolerate the occasional interference: that is superposition."
            </p>
            <p>
                "What to look for: with intro, watch the arrows in Feature directions go from "
                "two features to a pentagon of five as p drops; WᵀW shows which features share "
                "directions (off-diagonal colour is interference); the norms show which features "
                "are represented at all."
            </p>
        </About>
    }
}
