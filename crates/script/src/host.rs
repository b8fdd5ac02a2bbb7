//! The script host: every field's compiled programs, and the one worker thread that runs them (message
//! scripts from a bounded queue, periodic scripts on their schedule), off the async workers; and
//! one-off calls (response and audit scripts) on the blocking pool.
//!
//! The host knows nothing of templates, findings or storage. It is handed [`Source`]s, reports what a
//! script emitted to an [`Outlet`] and its faults to a [`FaultLog`], and keeps time on the injected
//! clock. A full queue skips the scripts of that message (counted in [`ScriptStats::skipped`]): the
//! message itself is already stored.

use crate::{Emitted, Limits, Program};
use sekisho_core::clock::SharedClock;
use sekisho_core::{DeviceId, FieldId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// When a script runs, which decides the function it must define.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `on_message(msg, device, field)` for every received message, on the worker thread.
    Message,
    /// `on_tick(devices, field, now)` every period, on the worker thread.
    Periodic(Duration),
    /// Called once with [`ScriptHost::run_once`] (response: `on_detection`, audit: `on_report`).
    OnCall(&'static str),
}

impl Role {
    /// The function a script of this role must define.
    pub fn function(self) -> &'static str {
        match self {
            Self::Message => "on_message",
            Self::Periodic(_) => "on_tick",
            Self::OnCall(f) => f,
        }
    }
}

/// One script of a field, as its template declares it.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub source: String,
    pub role: Role,
}

struct Periodic {
    program: Mutex<Program>,
    every: Duration,
    /// When it runs next (ms on the host's clock); `None` until the worker first sees it.
    next: Mutex<Option<i64>>,
}

/// A field's compiled worker scripts (one-off scripts are compiled per call).
#[derive(Default)]
pub struct FieldScripts {
    message: Vec<Mutex<Program>>,
    periodic: Vec<Periodic>,
}

/// Compiles every script of a field; lists every diagnostic (`scripts.<name>: …`).
pub fn compile(sources: &[Source], limits: Limits) -> Result<FieldScripts, Vec<String>> {
    let mut out = FieldScripts::default();
    let mut problems = Vec::new();
    for s in sources {
        match Program::compile(&s.name, &s.source, limits) {
            Ok(p) if !p.defines(s.role.function()) => {
                problems.push(format!(
                    "scripts.{}: defines no {}()",
                    s.name,
                    s.role.function()
                ));
            }
            Ok(p) => match s.role {
                Role::Message => out.message.push(Mutex::new(p)),
                Role::Periodic(every) => out.periodic.push(Periodic {
                    program: Mutex::new(p),
                    every: every.max(Duration::from_secs(1)),
                    next: Mutex::new(None),
                }),
                // Checked here; `run_once` compiles them afresh for each call.
                Role::OnCall(_) => {}
            },
            Err(e) => problems.push(format!("scripts.{e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A script that failed: it added nothing, and the fault is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptFault {
    pub at: i64,
    pub field: FieldId,
    pub script: String,
    /// `error`, `timeout` or `memory` (see [`crate::Fault::kind`]).
    pub kind: &'static str,
    pub message: String,
}

/// A boxed future the host awaits or spawns.
pub type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the host records faults (the store's script fault table).
pub trait FaultLog: Send + Sync + 'static {
    fn record(&self, fault: ScriptFault) -> Pending;
}

/// Drops faults after they are logged and counted (tools and benchmarks without a store).
pub struct DiscardFaults;

impl FaultLog for DiscardFaults {
    fn record(&self, _: ScriptFault) -> Pending {
        Box::pin(async {})
    }
}

/// What the worker thread reports to and reads from (the detection engine).
pub trait Outlet: Send + Sync + 'static {
    /// A script emitted a finding about `device` (for a message script: the message's device).
    fn emitted(&self, field: &FieldId, device: Option<DeviceId>, script: &str, e: Emitted, at: i64);
    /// The field's devices as `on_tick` sees them.
    fn devices(&self, field: &FieldId) -> serde_json::Value;
}

struct Job {
    field: FieldId,
    device: DeviceId,
    args: [serde_json::Value; 3],
    at: i64,
}

#[derive(Default, Debug)]
pub struct ScriptStats {
    pub runs: AtomicU64,
    pub faults: AtomicU64,
    pub skipped: AtomicU64,
}

/// What one script returned from a one-off call: its name, the findings it emitted and the actions
/// it asked for.
pub struct Ran {
    pub script: String,
    pub emitted: Vec<Emitted>,
    pub actions: Vec<String>,
}

pub struct ScriptHost {
    fields: RwLock<HashMap<FieldId, Arc<FieldScripts>>>,
    jobs: SyncSender<Job>,
    receiver: Mutex<Option<Receiver<Job>>>,
    faults: Arc<dyn FaultLog>,
    clock: SharedClock,
    pub stats: ScriptStats,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScriptHost {
    /// A host whose message queue holds `capacity` messages.
    pub fn new(capacity: usize, faults: Arc<dyn FaultLog>, clock: SharedClock) -> Self {
        let (jobs, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        Self {
            fields: RwLock::default(),
            jobs,
            receiver: Mutex::new(Some(rx)),
            faults,
            clock,
            stats: ScriptStats::default(),
        }
    }

    /// Replaces a field's worker scripts.
    pub fn set(&self, field: &FieldId, scripts: FieldScripts) {
        self.fields
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(field.clone(), Arc::new(scripts));
    }

    fn get(&self, field: &FieldId) -> Option<Arc<FieldScripts>> {
        self.fields
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(field)
            .cloned()
    }

    /// `true` when the field has message scripts (so the caller builds their arguments).
    pub fn wants_messages(&self, field: &FieldId) -> bool {
        self.get(field).is_some_and(|s| !s.message.is_empty())
    }

    /// Queues a message for the field's scripts; `false` when the queue is full (skipped, counted).
    pub fn submit(
        &self,
        field: &FieldId,
        device: &DeviceId,
        args: [serde_json::Value; 3],
        at: i64,
    ) -> bool {
        let job = Job {
            field: field.clone(),
            device: device.clone(),
            args,
            at,
        };
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn fault(&self, field: &FieldId, script: &str, kind: &'static str, message: String) -> Pending {
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(field = %field, script, kind, message = %message, "script fault");
        self.faults.record(ScriptFault {
            at: self.clock.now_ms(),
            field: field.clone(),
            script: script.to_owned(),
            kind,
            message,
        })
    }

    /// Runs one-off scripts (each must be [`Role::OnCall`]) once: each is compiled and its function
    /// called with `args` under the limits, on the blocking pool. A script that fails adds nothing and
    /// is a recorded fault (recorded before this returns).
    pub async fn run_once(
        &self,
        field: &FieldId,
        sources: Vec<Source>,
        args: Vec<serde_json::Value>,
        limits: Limits,
    ) -> Vec<Ran> {
        if sources.is_empty() {
            return Vec::new();
        }
        let ran = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut faults = Vec::new();
            for s in sources {
                let function = s.role.function();
                let result = Program::compile(&s.name, &s.source, limits)
                    .map_err(|e| ("error", e))
                    .and_then(|p| {
                        p.call(function, &args)
                            .map(|emitted| (emitted, p.take_actions()))
                            .map_err(|f| (f.kind(), f.to_string()))
                    });
                match result {
                    Ok((emitted, actions)) => out.push(Ran {
                        script: s.name,
                        emitted,
                        actions,
                    }),
                    Err((kind, message)) => faults.push((s.name, kind, message)),
                }
            }
            (out, faults)
        })
        .await;
        let Ok((out, faults)) = ran else {
            return Vec::new();
        };
        for (script, kind, message) in faults {
            self.fault(field, &script, kind, message).await;
        }
        out
    }

    /// Starts the worker thread (once; later calls do nothing). Faults it meets are recorded on `rt`.
    pub fn spawn_worker(self: &Arc<Self>, outlet: Arc<dyn Outlet>, rt: tokio::runtime::Handle) {
        let Some(rx) = lock(&self.receiver).take() else {
            return;
        };
        let host = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sekisho-scripts".into())
            .spawn(move || host.work(rx, &*outlet, &rt));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the script worker could not start");
        }
    }

    fn work(&self, rx: Receiver<Job>, outlet: &dyn Outlet, rt: &tokio::runtime::Handle) {
        let mut last_overload_report = Instant::now() - Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => self.run_message(job, outlet, rt),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let skipped = self.stats.skipped.load(Ordering::Relaxed);
            if skipped > 0 && last_overload_report.elapsed() > Duration::from_secs(10) {
                last_overload_report = Instant::now();
                tracing::error!(
                    skipped,
                    "script queue full: message scripts skipped (messages are stored)"
                );
            }
            self.run_periodic(outlet, rt);
        }
    }

    fn run_message(&self, job: Job, outlet: &dyn Outlet, rt: &tokio::runtime::Handle) {
        let Some(scripts) = self.get(&job.field) else {
            return;
        };
        for p in &scripts.message {
            let p = lock(p);
            self.stats.runs.fetch_add(1, Ordering::Relaxed);
            match p.call("on_message", &job.args) {
                Ok(out) => {
                    for e in out {
                        outlet.emitted(&job.field, Some(job.device.clone()), p.name(), e, job.at);
                    }
                }
                Err(e) => {
                    rt.spawn(self.fault(&job.field, p.name(), e.kind(), e.to_string()));
                }
            }
        }
    }

    fn run_periodic(&self, outlet: &dyn Outlet, rt: &tokio::runtime::Handle) {
        let fields: Vec<(FieldId, Arc<FieldScripts>)> = self
            .fields
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (field, scripts) in fields {
            for s in &scripts.periodic {
                let now = self.clock.now_ms();
                {
                    let every = s.every.as_millis() as i64;
                    let mut next = lock(&s.next);
                    match *next {
                        Some(at) if now >= at => *next = Some(now + every),
                        Some(_) => continue,
                        None => {
                            *next = Some(now + every);
                            continue;
                        }
                    }
                }
                let devices = outlet.devices(&field);
                let field_json = serde_json::json!({"id": field.0});
                let p = lock(&s.program);
                self.stats.runs.fetch_add(1, Ordering::Relaxed);
                match p.call("on_tick", &[devices, field_json, serde_json::json!(now)]) {
                    Ok(out) => {
                        for e in out {
                            let device = e.device.clone().map(DeviceId);
                            outlet.emitted(&field, device, p.name(), e, now);
                        }
                    }
                    Err(e) => {
                        rt.spawn(self.fault(&field, p.name(), e.kind(), e.to_string()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_core::clock::ManualClock;

    /// (field, device, script, at) of one emitted finding.
    type Seen = (FieldId, Option<DeviceId>, String, i64);

    #[derive(Default)]
    struct Recorder {
        faults: Mutex<Vec<ScriptFault>>,
        emitted: Mutex<Vec<Seen>>,
    }

    impl FaultLog for Recorder {
        fn record(&self, fault: ScriptFault) -> Pending {
            lock(&self.faults).push(fault);
            Box::pin(async {})
        }
    }

    impl Outlet for Recorder {
        fn emitted(&self, f: &FieldId, d: Option<DeviceId>, script: &str, _: Emitted, at: i64) {
            lock(&self.emitted).push((f.clone(), d, script.to_owned(), at));
        }
        fn devices(&self, _: &FieldId) -> serde_json::Value {
            serde_json::json!([{"id": "d-1"}])
        }
    }

    fn source(name: &str, role: Role, body: &str) -> Source {
        Source {
            name: name.into(),
            source: body.into(),
            role,
        }
    }

    const TICK: &str = r#"function on_tick(devices, field, now)
        emit{threat="theft", severity="low", summary="tick", device=devices[1].id}
    end"#;

    #[test]
    fn compile_lists_every_missing_function_and_syntax_error() {
        let sources = [
            source("a", Role::Message, "function on_tick() end"),
            source(
                "b",
                Role::OnCall("on_report"),
                "function on_detection() end",
            ),
            source("c", Role::Message, "function on_message( end"),
        ];
        let Err(problems) = compile(&sources, Limits::default()) else {
            panic!("three broken scripts compiled");
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0], "scripts.a: defines no on_message()");
        assert_eq!(problems[1], "scripts.b: defines no on_report()");
        assert!(problems[2].starts_with("scripts.c:"), "{}", problems[2]);
    }

    #[tokio::test]
    async fn run_once_returns_what_ran_and_records_what_failed_before_returning() {
        let rec = Arc::new(Recorder::default());
        let clock = ManualClock::new(1_000);
        let host = ScriptHost::new(4, rec.clone(), clock);
        let field = FieldId("f-1".into());
        let role = Role::OnCall("on_detection");
        let ran = host
            .run_once(
                &field,
                vec![
                    source("ok", role, r#"function on_detection(d) act("mail") end"#),
                    source("bad", role, "function on_detection(d) error('no') end"),
                ],
                vec![serde_json::json!({})],
                Limits::default(),
            )
            .await;
        assert_eq!(ran.len(), 1);
        assert_eq!(
            (ran[0].script.as_str(), ran[0].actions.clone()),
            ("ok", vec!["mail".to_owned()])
        );
        let faults = lock(&rec.faults).clone();
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(
            (faults[0].at, faults[0].script.as_str(), faults[0].kind),
            (1_000, "bad", "error")
        );
        assert_eq!(host.stats.faults.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_periodic_script_runs_when_the_clock_reaches_its_period() {
        let rec = Arc::new(Recorder::default());
        let clock = ManualClock::new(0);
        let host = ScriptHost::new(4, rec.clone(), clock.clone());
        let field = FieldId("f-1".into());
        let scripts = compile(
            &[source("t", Role::Periodic(Duration::from_secs(60)), TICK)],
            Limits::default(),
        );
        host.set(&field, scripts.expect("the tick script compiles"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        host.run_periodic(&*rec, rt.handle());
        clock.advance(Duration::from_secs(59));
        host.run_periodic(&*rec, rt.handle());
        assert!(lock(&rec.emitted).is_empty(), "ran before its period");
        clock.advance(Duration::from_secs(1));
        host.run_periodic(&*rec, rt.handle());
        host.run_periodic(&*rec, rt.handle());
        let emitted = lock(&rec.emitted).clone();
        assert_eq!(
            emitted,
            vec![(field, Some(DeviceId("d-1".into())), "t".to_owned(), 60_000)]
        );
    }

    #[test]
    fn a_full_queue_skips_and_counts() {
        let rec = Arc::new(Recorder::default());
        let host = ScriptHost::new(1, rec, ManualClock::new(0));
        let (f, d) = (FieldId("f".into()), DeviceId("d".into()));
        let args = || {
            [
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
            ]
        };
        assert!(host.submit(&f, &d, args(), 0));
        assert!(!host.submit(&f, &d, args(), 0));
        assert_eq!(host.stats.skipped.load(Ordering::Relaxed), 1);
    }
}
