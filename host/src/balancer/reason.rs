//! Why a balancer's answer was not used: the error of [`super::Balancer::pick`], and the label
//! each reason is counted and logged under.

/// Why a request went through the built-in round-robin instead of the plugin's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FallbackReason {
    /// The plugin trapped (panic, unreachable, bad memory access, failed to instantiate).
    #[error("the plugin trapped")]
    Trap,
    /// The call ran past its deadline.
    #[error("the plugin ran past its deadline")]
    Deadline,
    /// The plugin tried to grow its memory past the cap.
    #[error("the plugin hit its memory cap")]
    Memory,
    /// The plugin answered no backend.
    #[error("the plugin declined to pick")]
    Declined,
    /// The plugin answered an index past the last backend.
    #[error("the plugin picked an index out of range")]
    BadIndex,
    /// The plugin's first choice may not receive traffic (unhealthy or ejected).
    #[error("the plugin picked a backend that is not eligible")]
    Ineligible,
    /// The plugin was not called: its circuit breaker is open after repeated failures.
    #[error("the plugin's circuit breaker is open")]
    CircuitOpen,
}

impl FallbackReason {
    /// Every reason, in the order of [`crate::policy::FallbackCounts::snapshot`].
    pub const ALL: [FallbackReason; 7] = [
        FallbackReason::Trap,
        FallbackReason::Deadline,
        FallbackReason::Memory,
        FallbackReason::Declined,
        FallbackReason::BadIndex,
        FallbackReason::Ineligible,
        FallbackReason::CircuitOpen,
    ];

    /// The reason's label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Trap => "trap",
            FallbackReason::Deadline => "deadline",
            FallbackReason::Memory => "memory",
            FallbackReason::Declined => "declined",
            FallbackReason::BadIndex => "bad_index",
            FallbackReason::Ineligible => "ineligible",
            FallbackReason::CircuitOpen => "circuit_open",
        }
    }

    /// Whether the plugin is broken rather than choosing not to answer: a trap, the deadline,
    /// the memory cap or an index out of range. These count toward its circuit breaker;
    /// declining, or naming a backend that just left rotation, do not.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            FallbackReason::Trap
                | FallbackReason::Deadline
                | FallbackReason::Memory
                | FallbackReason::BadIndex
        )
    }
}
