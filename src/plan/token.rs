//! The plan token: 16 hex digits of SHA-256 over the observed generation, the settings fields
//! and every instance's key, declared state and fields. Pure: must not import tokio, nix,
//! hyper or notify.

use sha2::{Digest, Sha256};

use crate::desired::DesiredState;
use crate::desired::fields::{FieldMap, FieldValue};

/// Hash of the desired state and the observed generation, as 16 hex digits.
pub(super) fn token(desired: &DesiredState, settings: &FieldMap, generation: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(generation.to_le_bytes());
    hash_fields(&mut hasher, settings);
    for (key, spec) in &desired.instances {
        hasher.update(key.service.as_str().as_bytes());
        hasher.update([b':']);
        hasher.update(key.id.as_str().as_bytes());
        hasher.update([0, spec.state as u8]);
        hash_fields(&mut hasher, spec.fields());
    }
    let digest = hasher.finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Feeds a field map to the hasher unambiguously: every part is tagged or length-prefixed.
fn hash_fields(hasher: &mut Sha256, map: &FieldMap) {
    hasher.update((map.len() as u64).to_le_bytes());
    for (path, value) in map {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        match value {
            FieldValue::Text(text) => {
                hasher.update([b't']);
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            FieldValue::Int(int) => {
                hasher.update([b'i']);
                hasher.update(int.to_le_bytes());
            }
            FieldValue::Negative(int) => {
                hasher.update([b'n']);
                hasher.update(int.to_le_bytes());
            }
            FieldValue::Bool(flag) => hasher.update([b'b', u8::from(*flag)]),
        }
    }
}
