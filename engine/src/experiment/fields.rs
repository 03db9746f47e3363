//! Field metadata: each config field's link key, the name errors give it, its label and hint,
//! and its range. Each lab keeps one table beside its config ([`super::link::LinkConfig::FIELDS`]);
//! the page's form takes its headings and hints from it, `mechlab <lab> --help` lists it, and
//! validation checks each field's own range through it, so a bound is written once.

use crate::error::{EngineError, Result};

/// What values a field takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// Text with a syntax of its own, checked by the lab; the description says what it takes.
    Text(&'static str),
    /// A whole number from `min` to `max` inclusive.
    Whole {
        /// Smallest value.
        min: u64,
        /// Largest value (`u64::MAX`: no bound but the type's).
        max: u64,
    },
    /// A finite number above 0.
    Positive,
    /// A finite number at least 0.
    NonNegative,
    /// A probability in (0, 1].
    Probability,
    /// A fraction in [0, 1].
    Fraction,
    /// true or false.
    Bool,
    /// One of these `(value, label)`: the value as links spell it, the label as menus show it.
    /// The page's menus, `--help` and the lab's error messages all list them from here.
    Choice(&'static [(&'static str, &'static str)]),
}

/// The values of a choice as a sentence lists them: `a, b or c`.
pub fn one_of(choices: &[(&str, &str)]) -> String {
    let values: Vec<&str> = choices.iter().map(|c| c.0).collect();
    match values.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => values.concat(),
    }
}

/// One field of a lab's config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// Its key in links (`a.k`, `nf`).
    pub key: &'static str,
    /// The name validation errors give it (`k`, `n_features`), which the page matches to
    /// mark the control.
    pub name: &'static str,
    /// The control's heading.
    pub label: &'static str,
    /// One line of help.
    pub hint: &'static str,
    /// The values it takes.
    pub range: Range,
}

impl Field {
    /// Checks a whole-number field against its range.
    pub fn check_whole(&self, v: u64) -> Result<()> {
        match self.range {
            Range::Whole { min, max } if v < min || v > max => Err(EngineError::invalid(
                self.name,
                v,
                if max == u64::MAX || max == u32::MAX as u64 {
                    format!("must be at least {min}")
                } else {
                    format!("must be between {min} and {max}")
                },
            )),
            _ => Ok(()),
        }
    }

    /// Checks a real-valued field against its range.
    pub fn check_real(&self, v: f32) -> Result<()> {
        let (ok, why) = match self.range {
            Range::Positive => (v.is_finite() && v > 0.0, "must be a positive number"),
            Range::NonNegative => (v.is_finite() && v >= 0.0, "must be zero or positive"),
            Range::Probability => (v.is_finite() && v > 0.0 && v <= 1.0, "must be in (0, 1]"),
            Range::Fraction => ((0.0..=1.0).contains(&v), "must be in [0, 1]"),
            _ => (true, ""),
        };
        if ok {
            Ok(())
        } else {
            Err(EngineError::invalid(self.name, v, why))
        }
    }

    /// The range as help text.
    pub fn range_text(&self) -> String {
        match self.range {
            Range::Text(t) => t.to_string(),
            Range::Whole { min, max } if max == u64::MAX || max == u32::MAX as u64 => {
                format!("a whole number, at least {min}")
            }
            Range::Whole { min, max } => format!("a whole number from {min} to {max}"),
            Range::Positive => "a number above 0".into(),
            Range::NonNegative => "a number, 0 or more".into(),
            Range::Probability => "a probability in (0, 1]".into(),
            Range::Fraction => "a fraction in [0, 1]".into(),
            Range::Bool => "true or false".into(),
            Range::Choice(c) => one_of(c),
        }
    }
}

/// The field with link key `key` in `fields`.
pub fn find(fields: &'static [Field], key: &str) -> Option<&'static Field> {
    fields.iter().find(|f| f.key == key)
}

/// A table of the fields, one line each, for `--help`.
pub fn help(fields: &[Field]) -> String {
    let width = fields.iter().map(|f| f.key.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Config fields, by their keys in links (--link); a --config file is the config's JSON, \
         where dotted keys are nested objects and short keys have their long names:\n",
    );
    for f in fields {
        out += &format!(
            "  {:width$}  {}: {} ({})\n",
            f.key,
            f.label,
            f.hint,
            f.range_text()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: Field = Field {
        key: "steps",
        name: "steps",
        label: "Steps",
        hint: "training steps",
        range: Range::Whole { min: 1, max: 100 },
    };

    #[test]
    fn ranges_name_the_field_and_the_bound() {
        assert!(STEPS.check_whole(100).is_ok());
        let e = STEPS.check_whole(0).unwrap_err().to_string();
        assert_eq!(e, "invalid config: steps = 0: must be between 1 and 100");
        let p = Field {
            range: Range::Probability,
            name: "p",
            ..STEPS
        };
        assert!(p.check_real(1.0).is_ok());
        assert!(p.check_real(0.0).unwrap_err().to_string().contains("p = 0"));
        assert!(p.check_real(f32::NAN).is_err());
        assert!(help(&[STEPS, p])
            .contains("steps  Steps: training steps (a whole number from 1 to 100)"));
        assert_eq!(one_of(&[("a", "A"), ("b", "B"), ("c", "C")]), "a, b or c");
        assert_eq!(one_of(&[("a", "A"), ("b", "B")]), "a or b");
        assert_eq!(one_of(&[("a", "A")]), "a");
    }
}
