//! Any command line parses to a command or to an error reply, never a panic; an error always maps
//! to a 5xx reply.
#![no_main]

use ferry::protocol::command::parse_command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match parse_command(line) {
        Ok(command) => {
            let _ = command.verb();
        }
        Err(error) => {
            let reply = error.reply();
            assert!((500..600).contains(&reply.code.get()), "{reply:?}");
        }
    }
});
