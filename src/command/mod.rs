//! The commands: `record` and `attach` ([`profile`]), `report` of a recording ([`replay`]),
//! and `dump` ([`dump`]); what every command ends with, the summary, the reports and the
//! thresholds, is [`deliver`].

mod deliver;
pub mod dump;
pub mod profile;
pub mod replay;

pub use profile::{run, Launch};
pub use replay::report;
