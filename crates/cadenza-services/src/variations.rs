//! Variations: assignments (tools, tool sets, sub-agents), the memory-layer stack, deletion.
//!
//! Locks: every rule about a variation runs with the variation's row locked; a sub-agent
//! assignment also serializes on the workspace's agent graph (the cycle check reads every
//! edge); a tool-set assignment locks the set (so it cannot be deleted or archived under it).

use std::collections::{HashMap, HashSet};

use cadenza_domain::Error;
use cadenza_domain::memory::MemoryLayer;
use cadenza_domain::reasons::Reason;
use cadenza_domain::variations::{AssignmentKind, LayerAssignment, MAX_MEMORY_LAYERS};
use cadenza_store::Tx;

use crate::Result;

fn refused(reason: Reason, msg: impl Into<String>) -> Error {
    Error::invalid(msg).with_reason(reason)
}

/// Would making `child` a sub-agent of `parent` create a cycle?
pub fn creates_cycle(parent: &str, child: &str, edges: &[(String, String)]) -> bool {
    let mut graph: HashMap<&str, Vec<&str>> = HashMap::new();
    for (p, c) in edges {
        graph.entry(p.as_str()).or_default().push(c.as_str());
    }
    let mut seen = HashSet::new();
    let mut stack = vec![child];
    while let Some(node) = stack.pop() {
        if node == parent {
            return true;
        }
        if seen.insert(node) {
            stack.extend(graph.get(node).into_iter().flatten());
        }
    }
    false
}

async fn lock(tx: &mut Tx, workspace_id: &str, variation_id: &str) -> Result<()> {
    if tx.lock_variation(workspace_id, variation_id).await? { Ok(()) } else { Err(Error::not_found("variation")) }
}

/// Assigns `target` (already resolved in the workspace) to the variation of `agent_id`.
/// Returns the assignment's id (the existing one when it was assigned already).
pub async fn assign(
    tx: &mut Tx,
    workspace_id: &str,
    agent_id: &str,
    variation_id: &str,
    kind: AssignmentKind,
    target: &str,
) -> Result<String> {
    lock(tx, workspace_id, variation_id).await?;
    match kind {
        AssignmentKind::ToolSet => {
            let set =
                tx.get_tool_set_locked(workspace_id, target).await?.ok_or_else(|| Error::not_found("tool set"))?;
            if set.state == cadenza_domain::tool_sets::ToolSetState::Archived {
                return Err(refused(
                    Reason::ToolSetArchived,
                    "an archived tool set takes no new assignments: unarchive it first",
                )
                .with_meta("toolSetId", target));
            }
        }
        AssignmentKind::SubAgent => {
            tx.serialize_on(&format!("agent-graph:{workspace_id}")).await?;
            let edges = tx.sub_agent_edges(workspace_id).await?;
            if creates_cycle(agent_id, target, &edges) {
                return Err(refused(Reason::VariationCycle, "that sub-agent would make the agent its own ancestor")
                    .with_meta("subAgentId", target));
            }
        }
        AssignmentKind::Tool => {
            let (set_id, state) =
                tx.tool_set_and_state(workspace_id, target).await?.ok_or_else(|| Error::not_found("tool"))?;
            // The tool's set is locked too: it cannot be deleted under this assignment.
            tx.get_tool_set_locked(workspace_id, &set_id).await?;
            if state != cadenza_domain::tool_sets::ToolState::Available.as_str() {
                return Err(refused(
                    Reason::ToolNotAvailable,
                    "only an AVAILABLE tool can be assigned: restore it first",
                )
                .with_meta("toolId", target));
            }
        }
    }
    Ok(tx.add_assignment(workspace_id, variation_id, kind, target).await?)
}

fn check_position(stack: &[LayerAssignment], position: i32, except: Option<&str>) -> Result<()> {
    if position < 0 {
        return Err(Error::invalid_field("position", "position must not be negative"));
    }
    if stack.iter().any(|a| a.position == position && Some(a.id.as_str()) != except) {
        return Err(refused(
            Reason::MemoryPositionTaken,
            format!("position {position} is already taken in this variation's stack"),
        )
        .with_meta("position", position.to_string()));
    }
    Ok(())
}

/// Puts a (user-managed) memory layer on the variation's stack, at `position` or above the top.
/// The stack's cap, duplicates and positions are checked with the variation locked.
pub async fn attach_layer(
    tx: &mut Tx,
    workspace_id: &str,
    variation_id: &str,
    layer: &MemoryLayer,
    position: Option<i32>,
) -> Result<String> {
    let layer_id = layer.meta.id.as_str();
    if layer.system_managed {
        return Err(refused(
            Reason::MemoryLayerSystemManaged,
            "episodic (system-managed) layers are attached by the runtime, not assigned",
        )
        .with_meta("memoryLayerId", layer_id));
    }
    lock(tx, workspace_id, variation_id).await?;
    let stack = tx.list_layer_assignments(workspace_id, variation_id).await?;
    if stack.iter().any(|a| a.layer_id == layer_id) {
        return Err(refused(
            Reason::MemoryLayerAlreadyStacked,
            "this memory layer is already in the variation's stack",
        )
        .with_meta("memoryLayerId", layer_id));
    }
    if stack.len() >= MAX_MEMORY_LAYERS {
        return Err(refused(
            Reason::MemoryStackFull,
            format!("a variation's stack holds at most {MAX_MEMORY_LAYERS} memory layers"),
        )
        .with_meta("limit", MAX_MEMORY_LAYERS.to_string()));
    }
    if let Some(p) = position {
        check_position(&stack, p, None)?;
    }
    let (id, _) = tx.add_layer_assignment(workspace_id, variation_id, layer_id, position).await?;
    Ok(id)
}

/// Moves a layer of the stack to `position`. Returns the moved assignment.
pub async fn move_layer(
    tx: &mut Tx,
    workspace_id: &str,
    variation_id: &str,
    assignment_id: &str,
    position: i32,
) -> Result<LayerAssignment> {
    lock(tx, workspace_id, variation_id).await?;
    let stack = tx.list_layer_assignments(workspace_id, variation_id).await?;
    let current =
        stack.iter().find(|a| a.id == assignment_id).ok_or_else(|| Error::not_found("memory layer assignment"))?;
    check_position(&stack, position, Some(&current.id))?;
    tx.move_layer_assignment(workspace_id, variation_id, assignment_id, position).await?;
    Ok(LayerAssignment { position, ..current.clone() })
}

/// Deletes a variation, unless a schedule fires it. A schedule pinning the variation takes the
/// same lock ([`pin`]), so the two cannot cross.
pub async fn delete(tx: &mut Tx, workspace_id: &str, variation_id: &str) -> Result<()> {
    lock(tx, workspace_id, variation_id).await?;
    let pinned = tx.count_schedules_on_variation(workspace_id, variation_id).await?;
    if pinned > 0 {
        return Err(Error::of(
            Reason::VariationPinned,
            format!("{pinned} schedule(s) fire this variation: change or archive them first"),
        )
        .with_meta("schedules", pinned.to_string()));
    }
    tx.delete_variation(workspace_id, variation_id).await?;
    Ok(())
}

/// Before a schedule is written pinned to `variation_id`: locks the variation, so it cannot be
/// deleted until the schedule is committed, and fails when it is already gone.
pub async fn pin(tx: &mut Tx, workspace_id: &str, variation_id: &str) -> Result<()> {
    if tx.lock_variation(workspace_id, variation_id).await? {
        Ok(())
    } else {
        Err(Error::invalid_field("spec.agentVariationId", "the variation no longer exists"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_through_descendants() {
        let edges = vec![("b".to_string(), "c".to_string()), ("c".to_string(), "a".to_string())];
        assert!(creates_cycle("a", "b", &edges), "a → b → c → a");
        assert!(creates_cycle("a", "a", &[]), "an agent is not its own sub-agent");
        assert!(!creates_cycle("b", "d", &edges));
    }
}
