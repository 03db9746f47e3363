//! Named tensors in the safetensors format: writing f32 tensors, and reading any tensor a
//! PyTorch checkpoint may hold (f32, f16, bf16, f64) as f32 with its values checked. Every
//! exporter and importer (SAELens today, TransformerLens next) goes through here; errors name
//! the tensor and, for a bad value, its multi-index.

use crate::error::{EngineError, Result};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Little-endian bytes of f32 values, as safetensors stores them.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// One safetensors file of f32 tensors given as `(name, shape, little-endian bytes)`.
pub fn serialize_f32<S: AsRef<str>>(tensors: &[(S, Vec<usize>, Vec<u8>)]) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_ref().to_string(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| EngineError::invalid("weights", "", e.to_string()))?;
    safetensors::serialize(views, None)
        .map_err(|e| EngineError::invalid("weights", "", e.to_string()))
}

/// The tensor's values as f32, from any floating-point type a PyTorch checkpoint is saved in.
/// An f64 value beyond f32's range and an unreadable dtype are refused with `bad`'s error.
pub fn to_f32(t: &TensorView, name: &str, bad: impl Fn(String) -> EngineError) -> Result<Vec<f32>> {
    let data = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::F64 => {
            let wide: Vec<f64> = data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect();
            if let Some((i, v)) = wide
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_finite() && !(**v as f32).is_finite())
            {
                return Err(bad(format!(
                    "tensor \"{name}\" holds {v:e} at {}, beyond the range of f32",
                    index_in(t.shape(), i)
                )));
            }
            wide.iter().map(|&v| v as f32).collect()
        }
        other => {
            return Err(bad(format!(
                "tensor \"{name}\" has dtype {other}; only F32, F16, BF16 and F64 can be read"
            )))
        }
    })
}

/// A flat index as a multi-index in `shape`, as a person would look it up.
pub fn index_in(shape: &[usize], mut flat: usize) -> String {
    if shape.len() <= 1 {
        return format!("index {flat}");
    }
    let mut idx = vec![0; shape.len()];
    for (slot, &dim) in idx.iter_mut().zip(shape).rev() {
        *slot = flat % dim.max(1);
        flat /= dim.max(1);
    }
    format!("index {idx:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;

    fn bad(msg: String) -> EngineError {
        EngineError::BadImport(msg)
    }

    #[test]
    fn f32_tensors_round_trip_and_half_types_widen() {
        let bytes = serialize_f32(&[(
            "w",
            vec![2, 3],
            f32_bytes(&[1.0, -2.5, 3.0, 0.0, 1e-3, 7.0]),
        )])
        .unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let w = to_f32(&st.tensor("w").unwrap(), "w", bad).unwrap();
        assert_eq!(w, vec![1.0, -2.5, 3.0, 0.0, 1e-3, 7.0]);
        let halves: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::BF16, vec![2], &halves).unwrap();
        assert_eq!(to_f32(&view, "h", bad).unwrap(), vec![1.5, -0.25]);
    }

    #[test]
    fn out_of_range_and_unreadable_values_are_named() {
        let wide: Vec<u8> = [0.0f64, 1e300]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::F64, vec![1, 2], &wide).unwrap();
        let err = to_f32(&view, "big", bad).unwrap_err().to_string();
        assert!(err.contains("\"big\"") && err.contains("[0, 1]"), "{err}");
        let ints = [0u8; 8];
        let view = TensorView::new(Dtype::I64, vec![1], &ints).unwrap();
        let err = to_f32(&view, "n", bad).unwrap_err().to_string();
        assert!(err.contains("dtype I64"), "{err}");
    }
}
