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
}
