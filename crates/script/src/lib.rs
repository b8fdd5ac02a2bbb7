//! Field scripts (the trial's detection logic files) in Luau, sandboxed: no `require`, no `os` (no clock
//! but the `now` handed in), no `loadstring`, read-only libraries; every call runs under a CPU-time
//! deadline and the VM under a memory limit. A script compiles when its template is stored, with line
//! numbers in the diagnostics; at run time a script that errors, loops or exhausts memory is stopped and
//! reported as a [`Fault`] — never more.
//!
//! The API a script sees:
//! - `on_message(msg, device, field)` for message scripts: `msg` = `{id, received_at, ts, seq, buffered,
//!   size, rejected, source_ip, data}` (`data` is the device's JSON, `nil` for a refused message),
//!   `device` = `{id, unique_id, regime, last_seen, critical}`, `field` = `{id, name}`.
//! - `on_tick(devices, field, now)` for periodic scripts: `devices` is a list of `device` tables.
//! - `emit{threat=…, severity=…, summary=…, evidence={…}, device=…}` reports a finding (`device`
//!   optional in `on_tick`). Threats: unauthorized_access, spoofing, hijacking, eavesdropping, theft;
//!   severities: notice, low, medium, high, critical.
//! - `log(text)` writes to the gateway's log.
//!
//! [`host`] runs them: the worker thread for message and periodic scripts, one-off calls for response
//! and audit scripts, faults recorded through a [`host::FaultLog`]. Detection, response and audit all
//! use this one host; none of them reaches into another's scripts.

#![forbid(unsafe_code)]

pub mod host;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value, VmState};
use sekisho_core::{Severity, Threat};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a script may use per call.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub cpu: Duration,
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_millis(50),
            memory: 16 * 1024 * 1024,
        }
    }
}

/// Why a call did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("script error: {0}")]
    Error(String),
    #[error("CPU time limit exceeded")]
    Timeout,
    #[error("memory limit exceeded")]
    Memory,
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Error(_) => "error",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
        }
    }
}

/// A finding a script emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub threat: Threat,
    pub severity: Severity,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub device: Option<String>,
}

/// The names of a vocabulary, for error messages.
fn names<T: Copy + std::fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
const TIMEOUT_MARK: &str = "sekisho: CPU time limit exceeded";

/// One compiled script in its own VM.
pub struct Program {
    lua: Lua,
    name: String,
    deadline: Arc<Mutex<Option<Instant>>>,
    timed_out: Arc<AtomicBool>,
    emitted: Arc<Mutex<Vec<Emitted>>>,
    /// Actions asked for with `act("name")` during the last call (response scripts).
    acted: Arc<Mutex<Vec<String>>>,
    limits: Limits,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Program {
    /// Compiles `source` and runs its top level (under the limits). `Err` holds a diagnostic with the
    /// script's name and line.
    pub fn compile(name: &str, source: &str, limits: Limits) -> Result<Self, String> {
        let lua = Lua::new();
        let emitted: Arc<Mutex<Vec<Emitted>>> = Arc::default();
        let acted: Arc<Mutex<Vec<String>>> = Arc::default();
        let setup = || -> mlua::Result<()> {
            let g = lua.globals();
            for unsafe_global in [
                "require",
                "os",
                "loadstring",
                "getfenv",
                "setfenv",
                "print",
                "debug",
            ] {
                g.set(unsafe_global, Value::Nil)?;
            }
            let sink = emitted.clone();
            g.set(
                "emit",
                lua.create_function(move |lua, t: Table| {
                    let e = emitted_from(lua, &t)?;
                    lock(&sink).push(e);
                    Ok(())
                })?,
            )?;
            let actions = acted.clone();
            g.set(
                "act",
                lua.create_function(move |_, action: String| {
                    let mut a = lock(&actions);
                    if a.len() >= 32 {
                        return Err(mlua::Error::runtime("act: at most 32 actions per call"));
                    }
                    a.push(action.chars().take(64).collect());
                    Ok(())
                })?,
            )?;
            let script = name.to_owned();
            g.set(
                "log",
                lua.create_function(move |_, text: String| {
                    let text: String = text.chars().take(500).collect();
                    eprintln!("script {script}: {text}");
                    Ok(())
                })?,
            )?;
            lua.sandbox(true)?;
            Ok(())
        };
        setup().map_err(|e| format!("{name}: sandbox: {e}"))?;
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::default();
        let timed_out = Arc::new(AtomicBool::new(false));
        let (d, t) = (deadline.clone(), timed_out.clone());
        lua.set_interrupt(move |_| match *lock(&d) {
            Some(at) if Instant::now() >= at => {
                t.store(true, Ordering::Relaxed);
                Err(mlua::Error::runtime(TIMEOUT_MARK))
            }
            _ => Ok(VmState::Continue),
        });
        let _ = lua.set_memory_limit(limits.memory);
        let p = Self {
            lua,
            name: name.to_owned(),
            deadline,
            timed_out,
            emitted,
            acted,
            limits,
        };
        let chunk = p.lua.load(source).set_name(format!("={name}"));
        let f = chunk
            .into_function()
            .map_err(|e| format!("{name}: {}", first_line(&e)))?;
        p.guarded(|| f.call::<()>(()))
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(p)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `true` when the script defines `function_name`.
    pub fn defines(&self, function_name: &str) -> bool {
        matches!(
            self.lua.globals().get::<Value>(function_name),
            Ok(Value::Function(_))
        )
    }

    /// Runs `f` under the CPU deadline, turning every failure into a [`Fault`].
    fn guarded<R>(&self, f: impl FnOnce() -> mlua::Result<R>) -> Result<R, Fault> {
        *lock(&self.deadline) = Some(Instant::now() + self.limits.cpu);
        self.timed_out.store(false, Ordering::Relaxed);
        let r = f();
        *lock(&self.deadline) = None;
        r.map_err(|e| {
            if self.timed_out.load(Ordering::Relaxed) {
                Fault::Timeout
            } else if is_memory(&e) {
                let _ = self.lua.gc_collect();
                Fault::Memory
            } else {
                Fault::Error(first_line(&e))
            }
        })
    }

    /// The actions the last call asked for with `act("name")`, in order (response scripts).
    pub fn take_actions(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.acted))
    }

    /// Calls `function_name` with JSON arguments; returns what the script emitted.
    pub fn call(
        &self,
        function_name: &str,
        args: &[serde_json::Value],
    ) -> Result<Vec<Emitted>, Fault> {
        lock(&self.emitted).clear();
        lock(&self.acted).clear();
        let f: Function = match self.lua.globals().get(function_name) {
            Ok(f) => f,
            Err(_) => {
                return Err(Fault::Error(format!(
                    "the script defines no {function_name}()"
                )));
            }
        };
        let result = self.guarded(|| {
            let mut values = mlua::MultiValue::new();
            for a in args {
                values.push_back(self.lua.to_value(a)?);
            }
            f.call::<()>(values)
        });
        let out = std::mem::take(&mut *lock(&self.emitted));
        result.map(|()| out)
    }
}

fn is_memory(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory(cause),
        _ => false,
    }
}

fn first_line(e: &mlua::Error) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

fn emitted_from(lua: &Lua, t: &Table) -> mlua::Result<Emitted> {
    let get = |k: &str| t.get::<Option<String>>(k);
    let threat = get("threat")?.unwrap_or_default();
    let threat: Threat = threat.parse().map_err(|_| {
        mlua::Error::runtime(format!(
            "emit: threat '{threat}' is not one of {}",
            names(Threat::ALL)
        ))
    })?;
    let severity = match get("severity")? {
        None => Severity::Medium,
        Some(s) => s.parse().map_err(|_| {
            mlua::Error::runtime(format!(
                "emit: severity '{s}' is not one of {}",
                names(Severity::ALL)
            ))
        })?,
    };
    let evidence: serde_json::Value = match t.get::<Value>("evidence")? {
        Value::Nil => serde_json::Value::Null,
        v => lua.from_value(v)?,
    };
    Ok(Emitted {
        threat,
        severity,
        summary: get("summary")?
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect(),
        evidence,
        device: get("device")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prog(src: &str) -> Program {
        Program::compile(
            "t",
            src,
            Limits {
                cpu: Duration::from_millis(200),
                memory: 4 * 1024 * 1024,
            },
        )
        .unwrap()
    }

    #[test]
    fn scripts_read_the_message_and_emit() {
        let p = prog(
            r#"
            function on_message(msg, device, field)
              if msg.data and msg.data.speed and msg.data.speed > 180 then
                emit{threat="hijacking", severity="high", summary="speed " .. msg.data.speed, evidence={speed=msg.data.speed, limit=180}}
              end
            end"#,
        );
        assert!(p.defines("on_message") && !p.defines("on_tick"));
        let msg = json!({"data": {"speed": 250}});
        let out = p.call("on_message", &[msg, json!({}), json!({})]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].threat, out[0].summary.as_str()),
            (Threat::Hijacking, "speed 250")
        );
        assert_eq!(out[0].evidence, json!({"speed": 250, "limit": 180}));
        assert!(
            p.call(
                "on_message",
                &[json!({"data": {"speed": 50}}), json!({}), json!({})]
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn the_sandbox_has_no_files_processes_modules_or_clock() {
        for src in [
            "require('x')",
            "os.time()",
            "io.open('/etc/passwd')",
            "loadstring('return 1')()",
            "print('x')",
        ] {
            let p = prog(&format!("function on_message() {src} end"));
            let e = p.call("on_message", &[]).unwrap_err();
            assert!(matches!(e, Fault::Error(_)), "{src}: {e:?}");
        }
        // Library tables are read-only.
        let p = prog("function on_message() string.upper = nil end");
        assert!(matches!(p.call("on_message", &[]), Err(Fault::Error(_))));
    }

    #[test]
    fn endless_loops_and_memory_bombs_are_stopped_and_the_vm_lives_on() {
        let p = prog(
            r#"
            function spin() while true do end end
            function bomb() local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1048576) end end
            function ok() emit{threat="theft", summary="fine"} end"#,
        );
        assert_eq!(p.call("spin", &[]).unwrap_err(), Fault::Timeout);
        // Memory, not time, must stop the bomb, however loaded the machine: 1 MiB a step, 4 MiB allowed.
        assert_eq!(p.call("bomb", &[]).unwrap_err(), Fault::Memory);
        assert_eq!(
            p.call("ok", &[]).unwrap().len(),
            1,
            "the same VM still works"
        );
        assert_eq!(p.call("spin", &[]).unwrap_err(), Fault::Timeout);
    }

    #[test]
    fn compile_errors_name_the_line_and_bad_emits_are_errors() {
        let e = Program::compile(
            "rule_x",
            "function on_message(\n  x = = 1\nend",
            Limits::default(),
        )
        .err()
        .unwrap();
        assert!(e.starts_with("rule_x:") && e.contains(":2"), "{e}");
        let e = Program::compile(
            "top",
            "while true do end",
            Limits {
                cpu: Duration::from_millis(20),
                ..Limits::default()
            },
        )
        .err()
        .unwrap();
        assert!(e.contains("CPU time"), "{e}");
        let p = prog("function on_message() emit{threat='boredom'} end");
        assert!(matches!(p.call("on_message", &[]), Err(Fault::Error(m)) if m.contains("boredom")));
    }
}
