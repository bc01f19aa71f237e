//! How a deploy reaches the live site — in place in ordered phases, in place unordered, or by
//! swapping two copies (falling back to ordered phases where the server refuses, if asked) — and
//! the maintenance page of in-place deploys: the one entry point `ferry deploy push` and the
//! deploy service's queue share, so both finish an interrupted swap or take down a page a killed
//! deploy left up alike.

use std::sync::Arc;

use tracing::warn;

use super::DeployError;
use super::maintenance::{self, MaintenancePage};
use super::order::Order;
use super::progress::Reporter;
use super::push::{DeployRequest, PushOutcome};
use super::swap::{self, SWAP_REFUSED, SwapOutcome};

/// How visitors are kept from a half-deployed site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeployMode {
    /// In place, in phases: new files, changed files, changed entry points, deletes (the
    /// default; a repository's `.ferrydeploy` may still ask for `unordered`).
    #[default]
    Ordered,
    /// In place, every upload at once.
    Unordered,
    /// A standby copy brought up to the commit, then swapped live.
    Swap,
}

impl DeployMode {
    pub const ALL: [DeployMode; 3] = [Self::Ordered, Self::Unordered, Self::Swap];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Unordered => "unordered",
            Self::Swap => "swap",
        }
    }
}

impl std::str::FromStr for DeployMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "ordered" => Ok(Self::Ordered),
            "unordered" => Ok(Self::Unordered),
            "swap" => Ok(Self::Swap),
            other => Err(format!(
                "{other:?} is not a deploy mode: use ordered, unordered or swap"
            )),
        }
    }
}

impl std::fmt::Display for DeployMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode and its options, as the command line's flags or a service's settings say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployStrategy {
    pub mode: DeployMode,
    /// With [`DeployMode::Swap`]: deploy in place, in ordered phases, where the server will not
    /// rename directories, instead of failing.
    pub fallback_ordered: bool,
    /// Shown during deploys in place (with a swap: only when it falls back).
    pub maintenance: Option<MaintenancePage>,
}

impl DeployStrategy {
    /// Refuses combinations that would not do what they say.
    pub fn check(&self) -> Result<(), String> {
        if self.fallback_ordered && self.mode != DeployMode::Swap {
            return Err(
                "the ordered fallback is for swaps a server refuses: choose the swap mode, or \
                 leave the fallback off"
                    .to_owned(),
            );
        }
        if self.maintenance.is_some() && self.mode == DeployMode::Swap && !self.fallback_ordered {
            return Err(
                "a swap never shows visitors a half-deployed site, so it shows no maintenance \
                 page: leave the page out, or allow the ordered fallback (the page is shown \
                 when a server refuses the swap)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// What a deploy did, by the way it went.
#[derive(Debug)]
pub enum DeployOutcome {
    /// Deployed in place; `fell_back` when a swap was asked for and the server refused it.
    InPlace {
        outcome: PushOutcome,
        fell_back: bool,
    },
    Swapped(SwapOutcome),
}

impl DeployOutcome {
    /// The push that uploaded: the live copy's, or the standby copy's for a swap.
    pub fn push(&self) -> &PushOutcome {
        match self {
            Self::InPlace { outcome, .. } => outcome,
            Self::Swapped(swapped) => &swapped.standby,
        }
    }
}

/// Deploys `request` the way `strategy` says, telling `reporter` each phase.
pub async fn deploy(
    request: &DeployRequest,
    strategy: &DeployStrategy,
    reporter: Arc<dyn Reporter>,
) -> Result<DeployOutcome, DeployError> {
    strategy.check().map_err(DeployError::Usage)?;
    let page = strategy.maintenance.as_ref();
    match strategy.mode {
        DeployMode::Ordered | DeployMode::Unordered => {
            let mut request = request.clone();
            if strategy.mode == DeployMode::Unordered {
                request.order = Some(Order::Unordered);
            }
            let outcome = maintenance::push_with_page(&request, page, reporter).await?;
            Ok(DeployOutcome::InPlace {
                outcome,
                fell_back: false,
            })
        }
        DeployMode::Swap => match swap::push_swapped(request, Arc::clone(&reporter)).await {
            Ok(swapped) => Ok(DeployOutcome::Swapped(swapped)),
            Err(DeployError::Transfer(why))
                if strategy.fallback_ordered && why.contains(SWAP_REFUSED) =>
            {
                warn!("{why}; deploying in place, in ordered phases");
                reporter.phase("deploying in place: the server refuses the swap");
                let mut request = request.clone();
                request.order = Some(Order::Phased);
                let outcome = maintenance::push_with_page(&request, page, reporter).await?;
                Ok(DeployOutcome::InPlace {
                    outcome,
                    fell_back: true,
                })
            }
            Err(error) => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_they_are_written_and_odd_combinations_are_refused() {
        for mode in DeployMode::ALL {
            assert_eq!(mode.as_str().parse::<DeployMode>(), Ok(mode));
        }
        assert!(
            "blue-green"
                .parse::<DeployMode>()
                .unwrap_err()
                .contains("swap")
        );
        let page = Some("down.html".parse().unwrap());
        let strategy = |mode, fallback_ordered, maintenance: &Option<MaintenancePage>| {
            DeployStrategy {
                mode,
                fallback_ordered,
                maintenance: maintenance.clone(),
            }
            .check()
        };
        assert!(strategy(DeployMode::Ordered, false, &page).is_ok());
        assert!(strategy(DeployMode::Swap, true, &page).is_ok());
        assert!(strategy(DeployMode::Swap, false, &None).is_ok());
        assert!(
            strategy(DeployMode::Swap, false, &page)
                .unwrap_err()
                .contains("maintenance page")
        );
        assert!(
            strategy(DeployMode::Unordered, true, &None)
                .unwrap_err()
                .contains("swap mode")
        );
    }
}
