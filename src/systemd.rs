//! Readiness, stopping and watchdog notifications for a service manager that speaks systemd's
//! `sd_notify` protocol (`Type=notify` units). Outside such a unit (`NOTIFY_SOCKET` unset) every
//! call here does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// Tells the service manager that the listeners are bound and connections are being accepted.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager that a graceful shutdown has started.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half the interval the unit asked for (`WatchdogSec=`), for as long as the
/// runtime keeps running tasks: a wedged runtime stops the pings and systemd restarts the service.
pub async fn keep_watchdog_fed() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec) / 2;
    debug!(?period, "watchdog enabled");
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(error) = sd_notify::notify(false, states) {
        warn!(%error, "cannot notify the service manager");
    }
}
