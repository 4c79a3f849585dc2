//! 统一社会信用代码 (unified social credit code, USCC) per GB 32100-2015.
//!
//! Every enterprise applying through the portal is identified by its USCC, so
//! the code is validated once at the boundary (forms, CSV imports, JSON) and
//! carried around as a [`Uscc`] afterwards; holding a `Uscc` is proof that the
//! length, the character set and the check character were all verified.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

/// The 31 characters a USCC may contain, in value order: a character's value
/// is its index here. I, O, S, V and Z are left out because they are easily
/// confused with 1, 0, 5, U and 2.
const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of the first 17 characters in the check-character sum
/// (3^i mod 31, as tabulated in GB 32100-2015).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Number of characters in a USCC.
pub const USCC_LEN: usize = 18;

/// A validated 统一社会信用代码, stored in canonical (uppercase) form.
///
/// The field is private so that the only way to obtain one is through
/// [`Uscc::parse`] (or `FromStr` / `TryFrom<String>` / serde, which all call it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Uscc(String);

/// Why a string is not a valid USCC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// The input (after trimming surrounding whitespace) does not have 18 characters.
    #[error("a unified social credit code has 18 characters, but {found} were given")]
    WrongLength {
        /// Number of characters (not bytes) that were given.
        found: usize,
    },
    /// A character outside `0-9 A-H J-N P-R T-U W-Y` was found.
    #[error(
        "character {ch:?} at position {position} is not allowed in a unified social credit code \
         (only digits and the letters A-H, J-N, P-R, T, U, W-Y are used)"
    )]
    InvalidCharacter {
        /// 1-based position of the offending character, as a person would count it.
        position: usize,
        /// The character exactly as it was typed.
        ch: char,
    },
    /// All characters are allowed but the last one does not match the others,
    /// which almost always means a typo.
    #[error(
        "the check character (the last one) should be {expected:?} but is {found:?}; \
         the code probably contains a typo"
    )]
    CheckDigitMismatch {
        /// The check character computed from the first 17 characters.
        expected: char,
        /// The check character that was given.
        found: char,
    },
}

/// Value (0..=30) of a canonical USCC character, or `None` if it is not in the charset.
fn char_value(ch: char) -> Option<u32> {
    let byte = u8::try_from(ch).ok()?;
    CHARSET
        .iter()
        .position(|&c| c == byte)
        .and_then(|i| u32::try_from(i).ok())
}

/// Character for a value in 0..=30.
fn value_char(value: u32) -> Option<char> {
    let index = usize::try_from(value).ok()?;
    CHARSET.get(index).map(|&b| char::from(b))
}

/// Check character from the values of the first 17 characters (extra values
/// are ignored by the `zip` with the 17 weights).
fn check_char_from_values(values: &[u32]) -> char {
    let sum: u32 = values.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    // 31 - (sum mod 31) lies in 1..=31; the standard maps 31 to 0, which `% 31` does.
    let check = (31 - sum % 31) % 31;
    // `check` is in 0..=30, so the lookup cannot fail; '0' is unreachable.
    value_char(check).unwrap_or('0')
}

/// Computes the check character for the first 17 characters of a USCC.
///
/// Returns `None` unless `first17` is exactly 17 characters from the canonical
/// (uppercase) charset; no trimming or case folding is done here because the
/// helper is meant for generating codes, not for reading user input.
pub fn check_char(first17: &str) -> Option<char> {
    let mut values = [0u32; 17];
    let mut chars = first17.chars();
    for slot in &mut values {
        *slot = char_value(chars.next()?)?;
    }
    if chars.next().is_some() {
        return None;
    }
    Some(check_char_from_values(&values))
}

impl Uscc {
    /// Parses and validates a USCC.
    ///
    /// Surrounding whitespace (including the full-width space U+3000) is
    /// trimmed and ASCII lowercase letters are uppercased; anything else that
    /// is not exactly 18 charset characters with a matching check character
    /// is refused.
    ///
    /// # Errors
    ///
    /// [`UsccError::WrongLength`], then [`UsccError::InvalidCharacter`] for the
    /// first bad character, then [`UsccError::CheckDigitMismatch`].
    pub fn parse(input: &str) -> Result<Self, UsccError> {
        let trimmed = input.trim();
        let found = trimmed.chars().count();
        if found != USCC_LEN {
            return Err(UsccError::WrongLength { found });
        }

        let mut canonical = String::with_capacity(USCC_LEN);
        let mut values = [0u32; USCC_LEN];
        for ((index, ch), slot) in trimmed.chars().enumerate().zip(&mut values) {
            // People copy codes from forms and type them on phones in lowercase;
            // the letters mean the same, so accept them. Only ASCII is folded:
            // Unicode uppercasing would turn e.g. 'ı' into 'I' or 'ſ' into 'S'
            // and smuggle look-alike characters into a valid-looking code.
            let upper = ch.to_ascii_uppercase();
            *slot = char_value(upper).ok_or(UsccError::InvalidCharacter {
                position: index + 1,
                ch,
            })?;
            canonical.push(upper);
        }

        // `values` has exactly 18 entries, so the constant range is in bounds.
        let expected = check_char_from_values(&values[..USCC_LEN - 1]);
        let found_check = canonical.chars().next_back().unwrap_or_default();
        if expected != found_check {
            return Err(UsccError::CheckDigitMismatch {
                expected,
                found: found_check,
            });
        }
        Ok(Self(canonical))
    }

    /// The code in canonical form (18 uppercase ASCII characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit administrative division code (characters 3 to 8), e.g.
    /// `120116` (天津市滨海新区) for `91120116MA05JX7X2N`.
    pub fn division_code(&self) -> &str {
        // The string is always 18 ASCII bytes (checked in `parse`), so this
        // byte range is on character boundaries; `get` keeps it panic-free anyway.
        self.0.get(2..8).unwrap_or_default()
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uscc {
    type Err = UsccError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Uscc {
    type Error = UsccError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl AsRef<str> for Uscc {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Uscc> for String {
    fn from(value: Uscc) -> Self {
        value.0
    }
}

impl Serialize for Uscc {
    // Serialized as a bare string so JSON/CSV carry the code itself rather
    // than a newtype wrapper.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "91120116MA05JX7X2N";

    fn charset_chars() -> Vec<char> {
        CHARSET.iter().map(|&b| char::from(b)).collect()
    }

    /// Strategy for a valid code: 17 random charset chars plus their check char.
    fn valid_code() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(charset_chars()), 17).prop_map(|chars| {
            let first17: String = chars.into_iter().collect();
            let check = check_char(&first17).expect("17 charset chars have a check char");
            format!("{first17}{check}")
        })
    }

    /// Replacement candidates: every charset char, lowercase letters (which
    /// fold to charset chars or to forbidden ones), and some characters that
    /// are never allowed.
    fn replacement_pool() -> Vec<char> {
        let mut pool = charset_chars();
        pool.extend('a'..='z');
        pool.extend([
            'I', 'O', 'S', 'V', 'Z', 'o', '-', ' ', '中', 'Ａ', '０', 'ı', 'ſ',
        ]);
        pool
    }

    fn replace_at(code: &str, position: usize, replacement: char) -> String {
        code.chars()
            .enumerate()
            .map(|(i, c)| if i == position { replacement } else { c })
            .collect()
    }

    #[test]
    fn example_is_accepted() {
        let code = Uscc::parse(EXAMPLE).expect("example is valid");
        assert_eq!(code.as_str(), EXAMPLE);
        assert_eq!(code.to_string(), EXAMPLE);
        assert_eq!(code.division_code(), "120116");
    }

    #[test]
    fn check_char_of_example_is_n() {
        assert_eq!(check_char(&EXAMPLE[..17]), Some('N'));
    }

    #[test]
    fn check_char_refuses_bad_input() {
        assert_eq!(check_char(""), None);
        assert_eq!(check_char(&EXAMPLE[..16]), None);
        assert_eq!(check_char(EXAMPLE), None);
        assert_eq!(check_char("91120116ma05jx7x2"), None);
        assert_eq!(check_char("91120116MA05JX7XI"), None);
    }

    #[test]
    fn surrounding_whitespace_and_lowercase_are_normalised() {
        for input in [
            " 91120116MA05JX7X2N\n",
            "\t91120116ma05jx7x2n",
            "\u{3000}91120116Ma05Jx7X2n\u{3000}",
        ] {
            let code = Uscc::parse(input).expect("normalisable input is accepted");
            assert_eq!(code.as_str(), EXAMPLE, "input {input:?}");
        }
    }

    #[test]
    fn invalid_inputs_are_refused_with_the_right_error() {
        let cases: &[(&str, UsccError)] = &[
            ("", UsccError::WrongLength { found: 0 }),
            ("   ", UsccError::WrongLength { found: 0 }),
            ("91120116MA05JX7X2", UsccError::WrongLength { found: 17 }),
            ("91120116MA05JX7X2N0", UsccError::WrongLength { found: 19 }),
            ("91120116MA05 JX7X2N", UsccError::WrongLength { found: 19 }),
            (
                "9112011６MA05JX7X2N",
                UsccError::InvalidCharacter {
                    position: 8,
                    ch: '６',
                },
            ),
            (
                "91120116IA05JX7X2N",
                UsccError::InvalidCharacter {
                    position: 9,
                    ch: 'I',
                },
            ),
            (
                "91120116MO05JX7X2N",
                UsccError::InvalidCharacter {
                    position: 10,
                    ch: 'O',
                },
            ),
            (
                "91120116Mo05JX7X2N",
                UsccError::InvalidCharacter {
                    position: 10,
                    ch: 'o',
                },
            ),
            (
                "S1120116MA05JX7X2N",
                UsccError::InvalidCharacter {
                    position: 1,
                    ch: 'S',
                },
            ),
            (
                "91120116MA05JV7X2N",
                UsccError::InvalidCharacter {
                    position: 14,
                    ch: 'V',
                },
            ),
            (
                "91120116MA05JX7X2Z",
                UsccError::InvalidCharacter {
                    position: 18,
                    ch: 'Z',
                },
            ),
            (
                "91120116MA05JX7X-N",
                UsccError::InvalidCharacter {
                    position: 17,
                    ch: '-',
                },
            ),
            (
                "91120116MA05JX7X2M",
                UsccError::CheckDigitMismatch {
                    expected: 'N',
                    found: 'M',
                },
            ),
            (
                "91120116MA05JX7X3N",
                UsccError::CheckDigitMismatch {
                    // Hand-checked: raising the 17th value by 1 adds its weight
                    // 28 to the sum, so the check value drops from 22 (N) to 25 (R)
                    // ((22 - 28) mod 31 = 25).
                    expected: 'R',
                    found: 'N',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Uscc::parse(input).as_ref(),
                Err(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            UsccError::WrongLength { found: 17 }.to_string(),
            "a unified social credit code has 18 characters, but 17 were given"
        );
        assert!(
            UsccError::InvalidCharacter {
                position: 9,
                ch: 'I'
            }
            .to_string()
            .contains("'I' at position 9")
        );
        assert!(
            UsccError::CheckDigitMismatch {
                expected: 'N',
                found: 'M'
            }
            .to_string()
            .contains("should be 'N' but is 'M'")
        );
    }

    #[test]
    fn from_str_matches_parse() {
        let code: Uscc = EXAMPLE.parse().expect("example is valid");
        assert_eq!(code, Uscc::parse(EXAMPLE).expect("example is valid"));
        assert!("91120116MA05JX7X2M".parse::<Uscc>().is_err());
    }

    #[test]
    fn serde_uses_a_plain_string_and_validates() {
        let code = Uscc::parse(EXAMPLE).expect("example is valid");
        let json = serde_json::to_string(&code).expect("serialises");
        assert_eq!(json, format!("\"{EXAMPLE}\""));
        let back: Uscc = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, code);
        let lower: Uscc =
            serde_json::from_str("\"91120116ma05jx7x2n\"").expect("lowercase is accepted");
        assert_eq!(lower, code);
        let err = serde_json::from_str::<Uscc>("\"91120116MA05JX7X2M\"")
            .expect_err("bad check character is refused");
        assert!(err.to_string().contains("check character"), "{err}");
        assert!(serde_json::from_str::<Uscc>("18").is_err());
    }

    /// Every position of the example replaced by every other charset char is
    /// refused: the weights are all non-zero mod the prime 31, so any single
    /// substitution changes the sum mod 31.
    #[test]
    fn every_single_substitution_of_the_example_is_refused() {
        let expected_check = 'N';
        for (position, original) in EXAMPLE.chars().enumerate() {
            for replacement in charset_chars() {
                if replacement == original {
                    continue;
                }
                let mutated = replace_at(EXAMPLE, position, replacement);
                let err = Uscc::parse(&mutated).expect_err("substitution must be refused");
                let UsccError::CheckDigitMismatch { expected, found } = err else {
                    panic!("{mutated}: expected a check mismatch, got {err:?}");
                };
                if position == USCC_LEN - 1 {
                    assert_eq!((expected, found), (expected_check, replacement));
                } else {
                    assert_ne!(expected, expected_check, "{mutated}");
                    assert_eq!(found, expected_check, "{mutated}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn generated_codes_parse_and_round_trip(code in valid_code()) {
            let parsed = Uscc::parse(&code).expect("generated code is valid");
            prop_assert_eq!(parsed.as_str(), code.as_str());
            prop_assert_eq!(parsed.to_string(), code.clone());
            prop_assert_eq!(parsed.division_code(), &code[2..8]);
            let reparsed: Uscc = parsed.to_string().parse().expect("display output parses");
            prop_assert_eq!(reparsed, parsed);
        }

        #[test]
        fn changing_one_character_is_refused(
            code in valid_code(),
            position in 0..USCC_LEN,
            replacement in proptest::sample::select(replacement_pool()),
        ) {
            let original = code.chars().nth(position).expect("position < 18");
            // Lowercase of the same letter is the same character by design.
            prop_assume!(replacement.to_ascii_uppercase() != original);
            let mutated = replace_at(&code, position, replacement);
            prop_assert!(Uscc::parse(&mutated).is_err(), "{} was accepted", mutated);
        }
    }
}
