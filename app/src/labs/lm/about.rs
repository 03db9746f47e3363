//! The Transformer lab's explanation.

use crate::components::about::{About, Cite};
use leptos::prelude::*;

/// What the lab shows, what to look for, and where it comes from.
pub fn about() -> impl IntoView {
    view! {
        <About id="about-lm">
            <p>
                "Small decoder-only language models, trained on Shakespeare (or your own text) "
                "in this tab. The "
                <Cite href="https://transformer-circuits.pub/2022/solu/index.html">
                    "SoLU paper"
                </Cite>
                " (Elhage et al. 2022) asked whether the MLP's activation changes how "
                "interpretable its neurons are: SoLU(x) = x · softmax(x), followed by a "
                "LayerNorm, pushes each token's activation into a few neurons."
            </p>
            <p>
                "What to look for: train solu-vs-gelu and compare the two held-out losses (the "
                "paper found SoLU within about 0.01 nats of GeLU at matched size); then look "
                "inside, at each head's attention pattern over a prompt and the next-token "
                "distribution. Names and checkpoints follow "
                <Cite href="https://github.com/TransformerLensOrg/TransformerLens">
                    "TransformerLens"
                </Cite>
                " (hook_pre, hook_mid, …), so a model trained here opens there."
            </p>
        </About>
    }
}
