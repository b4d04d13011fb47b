//! Variations: creation and update (the agent exists, the model is enabled), assignments
//! (tools, tool sets, sub-agents), the memory-layer stack, deletion.
//!
//! Locks: every rule about a variation runs with the variation's row locked; a new variation
//! locks its agent (so it cannot land on an agent being deleted); a variation written on a model
//! locks the model (so it cannot be disabled under it, `models::assignable`); a sub-agent
//! assignment first serializes on the workspace's agent graph (the cycle check reads every
//! edge; agent deletion takes it too, always before any row lock); a tool-set assignment locks
//! the set (so it cannot be deleted or archived under it); a layer put on a stack locks the
//! layer (so it cannot be deleted under it, `memory::delete_layer`).

use std::collections::{HashMap, HashSet};

use cadenza_domain::Error;
use cadenza_domain::ids::IdRef;
use cadenza_domain::reasons::Reason;
use cadenza_domain::variations::{AssignmentKind, LayerAssignment, MAX_MEMORY_LAYERS, Variation};
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
    if kind == AssignmentKind::SubAgent {
        // Before the variation's lock: agent deletion takes the graph first too.
        tx.serialize_on(&crate::agents::graph_key(workspace_id)).await?;
    }
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
/// The stack's cap, duplicates and positions are checked with the variation locked, the layer's
/// existence with the layer locked.
pub async fn attach_layer(
    tx: &mut Tx,
    workspace_id: &str,
    variation_id: &str,
    layer_id: &str,
    position: Option<i32>,
) -> Result<String> {
    lock(tx, workspace_id, variation_id).await?;
    let (layer, _) = tx
        .get_memory_layer_locked(workspace_id, &IdRef::Id(layer_id.to_string()))
        .await?
        .ok_or_else(|| Error::not_found("memory layer"))?;
    if layer.system_managed {
        return Err(refused(
            Reason::MemoryLayerSystemManaged,
            "episodic (system-managed) layers are attached by the runtime, not assigned",
        )
        .with_meta("memoryLayerId", layer_id));
    }
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

/// Stores a new variation of its agent (locked: it cannot be deleted meanwhile), on an enabled
/// model (locked: it cannot be disabled meanwhile).
pub async fn create(tx: &mut Tx, v: &Variation) -> Result<()> {
    crate::agents::lock(tx, &v.workspace_id, &v.agent_id).await?;
    if let Some(mc) = &v.model_config {
        crate::models::assignable(tx, &v.workspace_id, &mc.model_id).await?;
    }
    tx.insert_variation(v).await?;
    Ok(())
}

/// Writes `v` (read with `Tx::get_variation_locked` in the same unit, then changed). A model
/// other than `previous_model` must be enabled, and is locked until the commit.
pub async fn update(tx: &mut Tx, v: &Variation, previous_model: Option<&str>) -> Result<()> {
    if let Some(mc) = &v.model_config
        && Some(mc.model_id.as_str()) != previous_model
    {
        crate::models::assignable(tx, &v.workspace_id, &mc.model_id).await?;
    }
    tx.update_variation(v).await?;
    Ok(())
}

/// Removes an assignment (by id) from the variation, or a 404.
pub async fn remove_assignment(tx: &mut Tx, workspace_id: &str, variation_id: &str, id: &str) -> Result<()> {
    lock(tx, workspace_id, variation_id).await?;
    if !tx.remove_assignment(workspace_id, variation_id, id).await? {
        return Err(Error::not_found("assignment"));
    }
    Ok(())
}

/// Removes the assignment of `target` (of `kind`) from the variation, or a 404.
pub async fn remove_target(
    tx: &mut Tx,
    workspace_id: &str,
    variation_id: &str,
    kind: AssignmentKind,
    target: &str,
) -> Result<()> {
    lock(tx, workspace_id, variation_id).await?;
    let existing = tx.list_assignments(workspace_id, variation_id).await?;
    let a = existing
        .iter()
        .find(|a| a.kind == kind && a.target_id == target)
        .ok_or_else(|| Error::not_found("assignment"))?;
    tx.remove_assignment(workspace_id, variation_id, &a.id).await?;
    Ok(())
}

/// Takes a layer assignment (by id) off the variation's stack, or a 404.
pub async fn detach_layer(tx: &mut Tx, workspace_id: &str, variation_id: &str, id: &str) -> Result<()> {
    lock(tx, workspace_id, variation_id).await?;
    if !tx.remove_layer_assignment(workspace_id, variation_id, id).await? {
        return Err(Error::not_found("memory layer assignment"));
    }
    Ok(())
}

/// Takes `layer_id` off the variation's stack, or a 404 when it is not there.
pub async fn detach_layer_id(tx: &mut Tx, workspace_id: &str, variation_id: &str, layer_id: &str) -> Result<()> {
    let id = stacked(tx, workspace_id, variation_id, layer_id).await?;
    tx.remove_layer_assignment(workspace_id, variation_id, &id).await?;
    Ok(())
}

/// Moves `layer_id` on the variation's stack to `position`.
pub async fn move_layer_id(
    tx: &mut Tx,
    workspace_id: &str,
    variation_id: &str,
    layer_id: &str,
    position: i32,
) -> Result<LayerAssignment> {
    let id = stacked(tx, workspace_id, variation_id, layer_id).await?;
    move_layer(tx, workspace_id, variation_id, &id, position).await
}

/// The id of `layer_id`'s assignment on the (locked) variation's stack.
async fn stacked(tx: &mut Tx, workspace_id: &str, variation_id: &str, layer_id: &str) -> Result<String> {
    lock(tx, workspace_id, variation_id).await?;
    let stack = tx.list_layer_assignments(workspace_id, variation_id).await?;
    let a = stack
        .into_iter()
        .find(|a| a.layer_id == layer_id)
        .ok_or_else(|| Error::not_found("memory layer assignment"))?;
    Ok(a.id)
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
