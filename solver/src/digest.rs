//! Definition digests: what a vertex *is*, independent of what its inputs
//! contain.
//!
//! The definition digest of a vertex is blake3 over the canonical JSON of
//! its [`Op`] followed by the definition digests of its inputs, in order.
//! `name`, `origin` and `ignore_cache` are not part of it: two stages that do
//! the same work under different labels are one vertex.

use std::fmt;

use crate::ir::{Graph, Op};

/// A 32-byte blake3 hash: definition digests and cache keys alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The hash as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The blake3 hash of some bytes.
    pub fn of(bytes: &[u8]) -> Key {
        Key(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Key {
    fn from(h: blake3::Hash) -> Key {
        Key(*h.as_bytes())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.to_hex()[..16])
    }
}

/// Domain separators so that no two kinds of hashed data can collide.
const OP_DOMAIN: &[u8] = b"bake.op.v1\0";
const DEF_DOMAIN: &[u8] = b"bake.definition.v1\0";

/// The digest of an op alone (no inputs): blake3 of its canonical JSON.
///
/// The IR's structs have a fixed field order and every map in it is a
/// `BTreeMap`, so `serde_json` is canonical here.
pub fn op_digest(op: &Op) -> Key {
    let json = serde_json::to_vec(op).expect("IR ops always serialise to JSON");
    let mut h = blake3::Hasher::new();
    h.update(OP_DOMAIN);
    h.update(&json);
    h.finalize().into()
}

/// The definition digest of a vertex from its op digest and its inputs'
/// definition digests.
pub fn definition_digest(op: &Key, inputs: &[Key]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(DEF_DOMAIN);
    h.update(&op.0);
    h.update(&(inputs.len() as u64).to_le_bytes());
    for i in inputs {
        h.update(&i.0);
    }
    h.finalize().into()
}

/// Definition digests of every vertex of a graph, by vertex index.
pub fn graph_digests(graph: &Graph) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::with_capacity(graph.vertices.len());
    for v in &graph.vertices {
        let inputs: Vec<Key> = v.inputs.iter().map(|i| out[i.0]).collect();
        out.push(definition_digest(&op_digest(&v.op), &inputs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Source, Vertex, VertexId};

    fn vertex(op: Op, inputs: Vec<VertexId>, name: &str) -> Vertex {
        Vertex {
            op,
            inputs,
            name: name.to_string(),
            origin: None,
            ignore_cache: false,
        }
    }

    #[test]
    fn name_and_ignore_cache_do_not_change_the_digest() {
        let mut g = Graph::default();
        let a = g.push(vertex(Op::Source(Source::Scratch), vec![], "a"));
        let mut b = vertex(Op::Source(Source::Scratch), vec![], "b");
        b.ignore_cache = true;
        let b = g.push(b);
        let d = graph_digests(&g);
        assert_eq!(d[a.0], d[b.0]);
    }

    #[test]
    fn inputs_change_the_digest() {
        let local = |n: &str| {
            Op::Source(Source::Local {
                name: n.to_string(),
                exclude: vec![],
            })
        };
        let op = op_digest(&local("context"));
        assert_ne!(op, op_digest(&local("other")));
        let x = Key::of(b"x");
        let y = Key::of(b"y");
        assert_ne!(
            definition_digest(&op, &[x, y]),
            definition_digest(&op, &[y, x])
        );
        assert_ne!(definition_digest(&op, &[]), definition_digest(&op, &[x]));
    }
}
