//! Optimisers and learning-rate schedules with PyTorch semantics (SPEC section 7).

mod adamw;
mod plateau;
pub use adamw::AdamW;
pub use plateau::ReduceLrOnPlateau;
