//! The Lua scripts, where all the waiting room's atomicity lives. Each opens with its
//! contract (`KEYS`, `ARGV`, reply), which [`super::replies`] decodes; those that
//! change an event's state or retire it start with `retain.lua` (a closed or idle-retired
//! event's keys expire). The texts are
//! public so the benchmark can time the very script the service runs.

pub const LOCATE: &str = include_str!("scripts/locate.lua");
pub const ADMIT: &str = concat!(include_str!("scripts/retain.lua"), include_str!("scripts/admit.lua"));
pub const REVIVED: &str = include_str!("scripts/revived.lua");
pub const PUT_SETTINGS: &str = concat!(include_str!("scripts/retain.lua"), include_str!("scripts/put_settings.lua"));
pub const SET_STATE: &str = concat!(include_str!("scripts/retain.lua"), include_str!("scripts/set_state.lua"));
pub const STATS: &str = include_str!("scripts/stats.lua");
pub const WATCH: &str = include_str!("scripts/watch.lua");
pub const LEAVE: &str = include_str!("scripts/leave.lua");
pub const RELEASE: &str = include_str!("scripts/release.lua");
pub const RESTORE: &str = concat!(include_str!("scripts/retain.lua"), include_str!("scripts/restore.lua"));
