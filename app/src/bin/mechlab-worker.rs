//! The training worker's entry point; trunk builds it as the `data-type="worker"` binary.

fn main() {
    mechlab_app::worker::start();
}
