//! Models: the catalog's rows, the enable/disable switch ("not disabled while variations run on
//! it") and the swap of variations from one model to another.
//!
//! Locks: every rule about a model runs with the model's row locked; assigning a model to a
//! variation ([`assignable`], from variation create and update) takes the same lock, so a
//! disable and an assignment cannot cross. A swap locks the variations it moves before the
//! models (a variation's update locks its row, then its model).

use cadenza_domain::Error;
use cadenza_domain::models::Model;
use cadenza_domain::reasons::Reason;
use cadenza_store::Tx;

use crate::Result;

/// Gives the workspace a row for every catalog model it has not seen yet.
pub async fn ensure(
    tx: &mut Tx,
    account_id: &str,
    workspace_id: &str,
    profile_id: &str,
    names: &[String],
) -> Result<()> {
    tx.ensure_models(account_id, workspace_id, profile_id, names).await?;
    Ok(())
}

async fn locked(tx: &mut Tx, workspace_id: &str, model_id: &str) -> Result<Model> {
    tx.get_model_locked(workspace_id, model_id).await?.ok_or_else(|| Error::not_found("model"))
}

fn disabled(m: &Model, msg: String) -> Error {
    Error::of(Reason::ModelDisabled, msg).with_meta("modelId", m.meta.id.clone())
}

/// Before a variation is written on `model_id`: locks the model, so it cannot be disabled until
/// the variation is committed, and refuses a disabled one.
pub async fn assignable(tx: &mut Tx, workspace_id: &str, model_id: &str) -> Result<Model> {
    let m = locked(tx, workspace_id, model_id).await?;
    if !m.enabled {
        return Err(disabled(&m, format!("model {} is disabled in this workspace", m.meta.name)));
    }
    Ok(m)
}

/// Turns the model on or off; off only while no variation runs on it. Returns the model as
/// written.
pub async fn set_enabled(tx: &mut Tx, workspace_id: &str, model_id: &str, enabled: bool) -> Result<Model> {
    let mut m = locked(tx, workspace_id, model_id).await?;
    if m.enabled == enabled {
        return Ok(m);
    }
    if !enabled {
        let uses = tx.count_variations_on_model(workspace_id, model_id).await?;
        if uses > 0 {
            return Err(Error::of(
                Reason::ModelInUse,
                format!(
                    "model {} is still used by {uses} variation(s): move them with models:swapModelOnVariations first",
                    m.meta.name
                ),
            )
            .with_meta("modelId", m.meta.id.clone())
            .with_meta("variations", uses.to_string()));
        }
    }
    tx.set_model_enabled(workspace_id, model_id, enabled).await?;
    m.enabled = enabled;
    m.meta.updated_at = tx.now();
    Ok(m)
}

/// One swap of a `models:swapModelOnVariations` request.
#[derive(Debug, Clone)]
pub struct Swap {
    pub current_model_id: String,
    pub next_model_id: String,
    pub disable_current_after_swap: bool,
}

/// Moves every variation from each swap's current model to its next one, then disables the
/// current one when asked. Every swap is checked, with all the models locked, before anything
/// changes.
pub async fn swap(tx: &mut Tx, workspace_id: &str, swaps: &[Swap]) -> Result<()> {
    // The variations to move first, then the models: the order a variation's update takes
    // them in (its row, then its model's).
    for s in swaps {
        tx.lock_variations_on_model(workspace_id, &s.current_model_id).await?;
    }
    // Models locked in one order, so two swaps naming the same models cannot deadlock.
    let mut ids: Vec<&str> =
        swaps.iter().flat_map(|s| [s.current_model_id.as_str(), s.next_model_id.as_str()]).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        locked(tx, workspace_id, id).await?;
    }
    for s in swaps {
        let next = locked(tx, workspace_id, &s.next_model_id).await?;
        if !next.enabled {
            return Err(disabled(&next, format!("model {} is disabled", next.meta.name)));
        }
        if s.current_model_id == s.next_model_id {
            return Err(Error::invalid_field("modelSwaps", "a swap needs two different models"));
        }
    }
    for s in swaps {
        let moved = tx.swap_variation_model(workspace_id, &s.current_model_id, &s.next_model_id).await?;
        tracing::info!(from = %s.current_model_id, to = %s.next_model_id, moved, "swapped model on variations");
        if s.disable_current_after_swap && locked(tx, workspace_id, &s.current_model_id).await?.enabled {
            tx.set_model_enabled(workspace_id, &s.current_model_id, false).await?;
        }
    }
    Ok(())
}
