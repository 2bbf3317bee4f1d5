//! How a piece of saved state becomes bytes and back: serde through postcard, whose wire format
//! is specified and stable across its 1.x releases. Every decode is bounded by its input (a
//! length prefix larger than what is left fails instead of allocating), so a corrupted state
//! file is an error, never an allocation the size of a lie.
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A piece of state that could not be written or taken back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("{what}: the saved state does not decode ({reason})")]
    Decode { what: &'static str, reason: String },
    #[error("{what}: encoding its state: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("{what}: {reason}")]
    Refused { what: &'static str, reason: String },
    #[error("{what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
}

impl From<crate::vstate::irqchip_state::IrqchipStateError> for StateError {
    fn from(e: crate::vstate::irqchip_state::IrqchipStateError) -> Self {
        Self::Kvm {
            what: e.what,
            source: e.source,
        }
    }
}

impl StateError {
    pub fn refused(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Refused {
            what,
            reason: reason.into(),
        }
    }
}

/// `value` as bytes; `what` names it in the error.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StateError> {
    postcard::to_allocvec(value).map_err(|e| StateError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// The value `bytes` hold, which must be all of them.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StateError> {
    let decode = |reason: String| StateError::Decode { what, reason };
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| decode(e.to_string()))?;
    match rest.len() {
        0 => Ok(value),
        n => Err(decode(format!("{n} bytes left over"))),
    }
}

/// `#[serde(with = "byte_strings")]` for a list of byte strings (the vCPUs' states): each is
/// written and read as `serde_bytes` does one, so postcard copies it whole.
pub mod byte_strings {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let borrowed: Vec<&Bytes> = list.iter().map(|b| Bytes::new(b)).collect();
        borrowed.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let owned = Vec::<ByteBuf>::deserialize(d)?;
        Ok(owned.into_iter().map(ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        a: u8,
        b: Vec<u32>,
    }

    #[test]
    fn state_round_trips_and_bad_bytes_are_errors() {
        let s = Sample { a: 7, b: vec![1, 2] };
        let bytes = encode("sample", &s).unwrap();
        assert_eq!(decode::<Sample>("sample", &bytes).unwrap(), s);
        assert!(matches!(
            decode::<Sample>("sample", &bytes[..2]),
            Err(StateError::Decode { what: "sample", .. })
        ));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode::<Sample>("sample", &extra).is_err());
        // A length prefix of 2^32 over four bytes of input fails without allocating it.
        assert!(decode::<Sample>("sample", &[1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1]).is_err());
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct AsSequences {
        one: Vec<u8>,
        maybe: Option<Vec<u8>>,
        many: Vec<Vec<u8>>,
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct AsByteStrings {
        #[serde(with = "serde_bytes")]
        one: Vec<u8>,
        #[serde(with = "serde_bytes")]
        maybe: Option<Vec<u8>>,
        #[serde(with = "super::byte_strings")]
        many: Vec<Vec<u8>>,
    }

    /// States written before byte strings went through serde_bytes still read, and the other
    /// way round: postcard writes both forms alike.
    #[test]
    fn byte_strings_are_written_as_sequences_of_bytes_were() {
        let long: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let seq = AsSequences {
            one: long.clone(),
            maybe: Some(vec![1, 2, 3]),
            many: vec![vec![], long.clone(), vec![9]],
        };
        let bytes = AsByteStrings {
            one: long.clone(),
            maybe: Some(vec![1, 2, 3]),
            many: vec![vec![], long, vec![9]],
        };
        let written = postcard::to_allocvec(&seq).unwrap();
        assert_eq!(written, postcard::to_allocvec(&bytes).unwrap());
        let back: AsByteStrings = postcard::from_bytes(&written).unwrap();
        assert_eq!(back, bytes);
        let none = AsSequences { maybe: None, ..seq };
        let back: AsByteStrings = postcard::from_bytes(&postcard::to_allocvec(&none).unwrap()).unwrap();
        assert_eq!(back.maybe, None);
    }
}
