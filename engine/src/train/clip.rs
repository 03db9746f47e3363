//! Global-norm gradient clipping: the norm over every trained tensor together, and one scale
//! that brings it down to the limit. The GPU kernels compute the same norm from per-chunk sums
//! of squares ([`crate::kernels::adam`]).

/// The L2 norm of all `tensors` together, summed in f64 so large models keep its precision.
pub fn global_norm<'a>(tensors: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    tensors
        .into_iter()
        .flat_map(|t| t.iter())
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        .sqrt() as f32
}

/// The factor that scales a gradient of norm `norm` to at most `max_norm` (1 when it is within
/// the limit or `max_norm` is 0, meaning no clipping).
pub fn clip_scale(norm: f32, max_norm: f32) -> f32 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / norm
    } else {
        1.0
    }
}

/// Scales `tensors` so their global norm is at most `max_norm` (0: no clipping); returns the
/// norm before clipping.
pub fn clip<'a>(tensors: impl IntoIterator<Item = &'a mut [f32]>, max_norm: f32) -> f32 {
    let tensors: Vec<&mut [f32]> = tensors.into_iter().collect();
    let norm = global_norm(tensors.iter().map(|t| &**t));
    let s = clip_scale(norm, max_norm);
    if s != 1.0 {
        tensors
            .into_iter()
            .for_each(|t| t.iter_mut().for_each(|v| *v *= s));
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_scales_every_tensor_by_one_factor() {
        let mut a = vec![3.0, 0.0];
        let mut b = vec![4.0];
        let norm = clip([a.as_mut_slice(), b.as_mut_slice()], 1.0);
        assert_eq!(norm, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-7 && (b[0] - 0.8).abs() < 1e-7);
        // Within the limit, or with no limit, nothing changes.
        assert_eq!(clip([a.as_mut_slice()], 0.0), a[0]);
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
    }
}
