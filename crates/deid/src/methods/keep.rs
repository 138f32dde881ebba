//! `keep`: the node and its subtree stay as they are, and no later rule may touch them.
//!
//! Keeping has no effect on a value; its whole effect is in the engine, which marks every node
//! of the kept subtree as visited. It records no operation, so a resource touched only by
//! `keep` rules gets no security label.

use super::Operation;

/// Keeps a value: changes nothing and records nothing.
pub fn keep() -> Option<Operation> {
    None
}
