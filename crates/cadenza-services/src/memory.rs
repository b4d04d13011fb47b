//! Memory layers and entries: the runtime owns system-managed (episodic) layers and their
//! entries; a layer in some variation's stack is not deleted; an entry whose body came from an
//! upload consumes the upload in the same unit.
//!
//! Locks: every change to a layer or to its entries runs with the layer's row locked; putting
//! the layer on a stack (`variations::attach_layer`) takes the same lock, so a delete and an
//! assignment cannot cross, nor an entry land in a layer being deleted.

use cadenza_domain::Error;
use cadenza_domain::ids::IdRef;
use cadenza_domain::memory::{LayerType, MemoryEntry, MemoryLayer};
use cadenza_domain::reasons::Reason;
use cadenza_store::Tx;

use crate::Result;

fn managed() -> Error {
    Error::of(
        Reason::MemoryLayerSystemManaged,
        "this memory layer is managed by the runtime and cannot be changed through the API",
    )
}

/// Stores a new user-managed layer; episodic layers belong to the runtime.
pub async fn create_layer(tx: &mut Tx, layer: &MemoryLayer) -> Result<()> {
    if layer.layer_type == LayerType::Episodic || layer.system_managed {
        return Err(Error::invalid("episodic layers are created by the runtime, not through the API")
            .with_reason(Reason::MemoryLayerSystemManaged)
            .with_meta("field", "spec.type"));
    }
    tx.insert_memory_layer(layer).await?;
    Ok(())
}

/// The layer `r` names and its entry count, locked for the rest of the unit, when the API may
/// change it (or its entries): a 404 when it is gone, refused when the runtime owns it.
pub async fn writable_layer(tx: &mut Tx, workspace_id: &str, r: &IdRef) -> Result<(MemoryLayer, i64)> {
    let (layer, n) =
        tx.get_memory_layer_locked(workspace_id, r).await?.ok_or_else(|| Error::not_found("memory layer"))?;
    if layer.system_managed {
        return Err(managed());
    }
    Ok((layer, n))
}

/// Writes `layer` (read with [`writable_layer`] in the same unit, then changed).
pub async fn save_layer(tx: &mut Tx, layer: &MemoryLayer) -> Result<()> {
    tx.update_memory_layer(layer).await?;
    Ok(())
}

/// Deletes a layer with its entries, unless some variation's stack holds it.
pub async fn delete_layer(tx: &mut Tx, workspace_id: &str, layer_id: &str) -> Result<()> {
    writable_layer(tx, workspace_id, &IdRef::Id(layer_id.to_string())).await?;
    let uses = tx.count_layer_uses(workspace_id, layer_id).await?;
    if uses > 0 {
        return Err(Error::of(
            Reason::MemoryLayerInUse,
            format!("this memory layer is in the stack of {uses} variation(s); remove it from them first"),
        )
        .with_meta("variations", uses.to_string()));
    }
    tx.delete_memory_layer(workspace_id, layer_id).await?;
    Ok(())
}

/// Stores `entry` (new when `insert`) in its layer, locking the layer first (a 404 when it is
/// gone, refused when the runtime owns it), and consumes `upload` (where its body came from)
/// in the same unit.
pub async fn write_entry(tx: &mut Tx, entry: &MemoryEntry, upload: Option<&str>, insert: bool) -> Result<()> {
    writable_layer(tx, &entry.workspace_id, &IdRef::Id(entry.layer_id.clone())).await?;
    if let Some(u) = upload {
        tx.consume_upload(&entry.workspace_id, u).await?;
    }
    if insert {
        tx.insert_memory_entry(entry).await?;
    } else {
        tx.update_memory_entry(entry).await?;
    }
    Ok(())
}

/// Deletes the entry `r` names in a layer the API may change, or a 404.
pub async fn delete_entry(tx: &mut Tx, workspace_id: &str, layer: &IdRef, r: &IdRef) -> Result<()> {
    let (layer, _) = writable_layer(tx, workspace_id, layer).await?;
    let entry = tx
        .get_memory_entry_locked(workspace_id, &layer.meta.id, r)
        .await?
        .ok_or_else(|| Error::not_found("memory entry"))?;
    tx.delete_memory_entry(workspace_id, &layer.meta.id, &entry.meta.id).await?;
    Ok(())
}
