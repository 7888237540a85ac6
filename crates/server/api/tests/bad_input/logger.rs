//! `logger.tsv`: the server's Logger API (SetLogLevel with a level it cannot set).

use std::sync::{Arc, Mutex};

use spire_proto::spire::api::server::logger::v1::{
    SetLogLevelRequest, logger_client::LoggerClient,
};
use spire_proto::spire::api::types::LogLevel;
use spire_server_api::logger::LogLevelControl;

use crate::support::Harness;
use crate::table::{self, Input, Outcome, Row, Tally};
use crate::{check_revision, revision};

/// A level the test can watch: a refused call must leave it as it was.
#[derive(Debug)]
struct Level(Mutex<LogLevel>);

impl LogLevelControl for Level {
    fn current_level(&self) -> LogLevel {
        *self.0.lock().unwrap()
    }
    fn launch_level(&self) -> LogLevel {
        LogLevel::Info
    }
    fn set_level(&self, level: LogLevel) -> Result<(), String> {
        *self.0.lock().unwrap() = level;
        Ok(())
    }
}

async fn run(h: &Harness, level: &Level, row: &Row) -> Result<Outcome, String> {
    let mut input = Input::new(row);
    let mut outcome = match row.surface.as_str() {
        "SetLogLevel" => {
            let new_level = i32::try_from(input.i64("new_level").ok_or("no new_level")?).unwrap();
            input.done()?;
            let before = revision(h).await;
            let result = LoggerClient::new(h.channel.clone())
                .set_log_level(SetLogLevelRequest { new_level })
                .await;
            let mut outcome = Outcome::of(&result);
            check_revision(&mut outcome, before, revision(h).await, 0);
            outcome
        }
        other => return Err(format!("no request builder for surface {other:?}")),
    };
    outcome.check(
        level.current_level() == LogLevel::Info,
        format!("the level changed to {:?}", level.current_level()),
    );
    Ok(outcome)
}

#[tokio::test]
async fn logger_catalogue() {
    let level = Arc::new(Level(Mutex::new(LogLevel::Info)));
    let control = level.clone();
    let h = Harness::start_with(move |ctx| ctx.logger = Some(control)).await;
    let mut tally = Tally::new("logger.tsv");
    for row in table::load("logger.tsv") {
        let outcome = run(&h, &level, &row).await;
        tally.record(&row, outcome);
    }
    tally.finish();
}
