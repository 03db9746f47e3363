//! A linear layer by its parameters' names in an arena (`y = x · W + b`, `x` `[rows, k]`, `W`
//! `[k, n]`): the forward product with its bias, and the backward's three products, over
//! [`matmul`] and [`sum_rows`] (their CPU references and tests are theirs; the layer's are the
//! models' gradient tests). Every model with named weights uses these two.

use super::matmul::{matmul, Matmul};
use super::sum_rows::sum_rows;
use crate::error::Result;
use crate::gpu::{Arena, Recording, View};

/// Records `y = x · W + b` for the arena's tensors `w` and `b`.
pub async fn linear(
    rec: &mut Recording<'_>,
    params: &Arena,
    (w, b): (&str, &str),
    x: View<'_>,
    y: View<'_>,
    (rows, k, n): (usize, usize, usize),
) -> Result<()> {
    let mm = Matmul {
        a: x,
        b: params.view(w)?,
        c: y,
        m: rows,
        n,
        k,
        trans_a: false,
        trans_b: false,
        bias: Some(params.view(b)?),
        centre: None,
        accumulate: false,
    };
    matmul(rec, &mm).await
}

/// A linear layer's backward: W's gradient `xᵀ · dy` and b's (column sums) into the gradient
/// arena (added to what is there with `accumulate`: a layer taken a chunk of rows at a time),
/// and the input's `dy · Wᵀ` into `dx`.
#[allow(clippy::too_many_arguments)]
pub async fn linear_backward(
    rec: &mut Recording<'_>,
    grads: &Arena,
    params: &Arena,
    (w, b): (&str, &str),
    x: View<'_>,
    dy: View<'_>,
    dx: View<'_>,
    (rows, k, n): (usize, usize, usize),
    accumulate: bool,
) -> Result<()> {
    let dw = Matmul {
        a: x,
        b: dy,
        c: grads.view(w)?,
        m: k,
        n,
        k: rows,
        trans_a: true,
        trans_b: false,
        bias: None,
        centre: None,
        accumulate,
    };
    matmul(rec, &dw).await?;
    sum_rows(rec, dy, grads.view(b)?, (rows, n), accumulate).await?;
    let din = Matmul {
        a: dy,
        b: params.view(w)?,
        c: dx,
        m: rows,
        n: k,
        k: n,
        trans_a: false,
        trans_b: true,
        bias: None,
        centre: None,
        accumulate: false,
    };
    matmul(rec, &din).await
}
