//! The SAE lab's explanation.

use crate::components::about::{About, Cite};
use leptos::prelude::*;

/// What the lab shows, what to look for, and where it comes from.
pub fn about() -> impl IntoView {
    view! {
        <About id="about-sae">
            <p>
                "A sparse autoencoder (SAE) learns a dictionary of many more latents than its "
                "input has dimensions: it encodes an activation into latents of which only a few "
                "are active, and reconstructs the activation from them ("
                <Cite href="https://transformer-circuits.pub/2023/monosemantic-features">
                    "Bricken et al. 2023"
                </Cite>
                "). Here the activations come from planted features (random unit directions, "
                "each firing with a small probability) or a toy model's hidden layer, so the "
                "truth is known and the SAE can be scored against it."
            </p>
            <p>
                "Five architectures: ReLU + L1, TopK ("
                <Cite href="https://arxiv.org/abs/2406.04093">"Gao et al. 2024"</Cite>
                "), BatchTopK, Gated and JumpReLU, trained as "
                <Cite href="https://github.com/jbloomAus/SAELens">"SAELens"</Cite>
                " trains them, and exported in its layout."
            </p>
            <p>
                "What to look for: the reconstruction loss falls while L0 (active latents per "
                "input) stays near k or falls with λ; MMCS (each true feature's best cosine to a "
                "latent) and the count of recovered features (cosine ≥ 0.9) climb; the density "
                "histogram shows dead latents. On a frontier, lower and further left is better."
            </p>
        </About>
    }
}
