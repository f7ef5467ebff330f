//! Cache keys: blake3 over a vertex's op digest and its inputs' *content*
//! keys.
//!
//! An image's content key is its image id, scratch's a constant, an exec or
//! file vertex's the chain id of its result ([`layers`]); a local source has no key of its own:
//! the consuming vertex hashes exactly the files it reads
//! ([`crate::context_hash`]) and uses that instead.

use crate::digest::Key;
use crate::ir::Digest;

/// Changed whenever an op gives another result for the same definition, so a
/// store (or an imported cache) filled by an older bake is not served as if it
/// were right. v2: COPY's destination-dir mode and owner, wildcard selection
/// through dirs without the rest of the path, several sources to one path,
/// file capabilities kept by ADD of a tar and COPY --from.
const KEY_DOMAIN: &[u8] = b"bake.cache-key.v2\0";

/// The cache key from an op digest and the inputs' content keys, in input
/// order.
pub fn cache_key(op: &Key, inputs: &[Key]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(KEY_DOMAIN);
    h.update(&op.0);
    h.update(&(inputs.len() as u64).to_le_bytes());
    for i in inputs {
        h.update(&i.0);
    }
    h.finalize().into()
}

/// The content key of the empty filesystem.
pub fn scratch() -> Key {
    Key::of(b"bake.scratch.v1")
}

/// The content key of an image: its id (config digest).
pub fn image(id: &Digest) -> Key {
    Key::of(format!("bake.image.v1\0{id}").as_bytes())
}

/// The placeholder key of a local source (never used as a content key:
/// consumers hash what they read).
pub fn local(name: &str) -> Key {
    Key::of(format!("bake.local.v1\0{name}").as_bytes())
}

/// The content key of a filesystem made by a vertex: its top chain id,
/// which covers every layer below.
pub fn layers(chain: &[bake_store::Layer]) -> Key {
    match chain.last() {
        Some(top) => Key::of(format!("bake.layers.v1\0{}", top.chain_id.0).as_bytes()),
        None => scratch(),
    }
}

/// Combines several keys (e.g. several COPYs reading one context) into one.
pub fn combine(parts: &[Key]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"bake.combine.v1\0");
    for p in parts {
        h.update(&p.0);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_op_and_input_content() {
        let op = Key::of(b"op");
        let a = image(&Digest::of(b"a"));
        let b = image(&Digest::of(b"b"));
        assert_ne!(cache_key(&op, &[a]), cache_key(&op, &[b]));
        assert_ne!(cache_key(&op, &[a]), cache_key(&Key::of(b"op2"), &[a]));
        assert_eq!(cache_key(&op, &[a]), cache_key(&op, &[a]));
        assert_ne!(scratch(), local("context"));
    }
}
