//! Field scripts at run time: every field's compiled programs, and the one worker thread that runs them
//! (message scripts from a bounded queue, periodic scripts on their schedule), off the async workers.
//! What a script emits becomes a finding (`script.<name>`); a script that fails is a recorded fault.
//! A full queue skips the scripts of that message (counted and recorded as an `overloaded` fault): the
//! message itself is already stored.

use super::{Detector, Found};
use sekisho_core::{DeviceId, FieldId, RuleId};
use sekisho_detect::template::ScriptTrigger;
use sekisho_detect::{Finding, Template};
use sekisho_script::{Emitted, Limits, Program};
use sekisho_store::prelude::*;
use sekisho_store::{Store, now_ms};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub struct Periodic {
    program: Mutex<Program>,
    every: Duration,
    next: Mutex<Instant>,
}

/// A field's compiled scripts.
#[derive(Default)]
pub struct FieldScripts {
    message: Vec<Mutex<Program>>,
    periodic: Vec<Periodic>,
}

/// Compiles every script of a template; lists every diagnostic.
pub fn compile(t: &Template, limits: Limits) -> Result<FieldScripts, Vec<String>> {
    let mut out = FieldScripts::default();
    let mut problems = Vec::new();
    for s in &t.scripts {
        match Program::compile(&s.name, &s.source, limits) {
            Ok(p) => {
                let needs = match s.on {
                    ScriptTrigger::Message => "on_message",
                    ScriptTrigger::Periodic => "on_tick",
                    ScriptTrigger::Response => "on_detection",
                    ScriptTrigger::Audit => "on_report",
                };
                if !p.defines(needs) {
                    problems.push(format!("scripts.{}: defines no {needs}()", s.name));
                } else if matches!(s.on, ScriptTrigger::Response | ScriptTrigger::Audit) {
                    // Checked here; the response worker and the audit run them (`run_once`).
                } else if s.on == ScriptTrigger::Message {
                    out.message.push(Mutex::new(p));
                } else {
                    let every = Duration::from_secs(s.every.map_or(60, |e| e.secs().max(1)) as u64);
                    out.periodic.push(Periodic {
                        program: Mutex::new(p),
                        every,
                        next: Mutex::new(Instant::now() + every),
                    });
                }
            }
            Err(e) => problems.push(format!("scripts.{e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

pub struct Job {
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

pub struct ScriptHost {
    fields: RwLock<HashMap<FieldId, Arc<FieldScripts>>>,
    jobs: SyncSender<Job>,
    receiver: Mutex<Option<Receiver<Job>>>,
    pub stats: ScriptStats,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScriptHost {
    pub fn new(capacity: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        Self {
            fields: RwLock::default(),
            jobs,
            receiver: Mutex::new(Some(rx)),
            stats: ScriptStats::default(),
        }
    }

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
        match self.jobs.try_send(Job {
            field: field.clone(),
            device: device.clone(),
            args,
            at,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

pub(crate) fn finding(script: &str, e: Emitted) -> (Option<String>, Finding) {
    let (threat, severity) = (e.threat, e.severity);
    let summary = if e.summary.is_empty() {
        format!("script {script} reported {}", e.threat)
    } else {
        e.summary
    };
    (
        e.device,
        Finding::new(
            RuleId::script(script),
            threat,
            severity,
            summary,
            e.evidence,
        ),
    )
}

/// What one script returned from a one-off call: its name, the findings it emitted and the actions
/// it asked for.
pub struct Ran {
    pub script: String,
    pub emitted: Vec<Emitted>,
    pub actions: Vec<String>,
}

/// Runs a field's scripts of one trigger once (response and audit scripts): each is compiled and
/// `function` called with `args` under the limits, off the async workers. A script that fails adds
/// nothing and is a recorded fault.
pub async fn run_once(
    store: &Store,
    field: &str,
    t: &Template,
    trigger: ScriptTrigger,
    function: &'static str,
    args: Vec<serde_json::Value>,
    limits: Limits,
) -> Vec<Ran> {
    let scripts: Vec<_> = t
        .scripts
        .iter()
        .filter(|s| s.on == trigger)
        .cloned()
        .collect();
    if scripts.is_empty() {
        return Vec::new();
    }
    let ran = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut faults = Vec::new();
        for s in scripts {
            let result = Program::compile(&s.name, &s.source, limits)
                .map_err(|e| ("error", e))
                .and_then(|p| {
                    p.call(function, &args)
                        .map(|emitted| (emitted, p.take_actions()))
                        .map_err(|f| (f.kind(), f.to_string()))
                });
            match result {
                Ok((emitted, actions)) => out.push(Ran {
                    script: s.name.clone(),
                    emitted,
                    actions,
                }),
                Err((kind, message)) => faults.push((s.name.clone(), kind, message)),
            }
        }
        (out, faults)
    })
    .await;
    let Ok((out, faults)) = ran else {
        return Vec::new();
    };
    for (script, kind, message) in faults {
        tracing::warn!(field, script, kind, message, "script fault");
        if let Err(e) = store
            .insert_script_fault(now_ms(), field, &script, kind, &message)
            .await
        {
            tracing::error!(error = %e, "script fault not recorded");
        }
    }
    out
}

/// Starts the script worker thread.
pub fn spawn_worker(detector: Arc<Detector>, store: Store, rt: tokio::runtime::Handle) {
    let Some(rx) = lock(&detector.scripts.receiver).take() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("sekisho-scripts".into())
        .spawn(move || {
            let fault = |field: &FieldId, script: &str, kind: &str, message: String| {
                detector
                    .scripts
                    .stats
                    .faults
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(field = %field, script, kind, message = %message, "script fault");
                let (store, field, script, kind) = (
                    store.clone(),
                    field.0.clone(),
                    script.to_owned(),
                    kind.to_owned(),
                );
                rt.spawn(async move {
                    if let Err(e) = store
                        .insert_script_fault(now_ms(), &field, &script, &kind, &message)
                        .await
                    {
                        tracing::error!(error = %e, "script fault not recorded");
                    }
                });
            };
            let mut last_overload_report = Instant::now() - Duration::from_secs(60);
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(job) => {
                        let Some(scripts) = detector.scripts.get(&job.field) else {
                            continue;
                        };
                        for p in &scripts.message {
                            let p = lock(p);
                            detector.scripts.stats.runs.fetch_add(1, Ordering::Relaxed);
                            match p.call("on_message", &job.args) {
                                Ok(out) => {
                                    for e in out {
                                        let (_, f) = finding(p.name(), e);
                                        detector.emit_found(Found {
                                            field: job.field.clone(),
                                            device: Some(job.device.clone()),
                                            finding: f,
                                            at: job.at,
                                        });
                                    }
                                }
                                Err(e) => fault(&job.field, p.name(), e.kind(), e.to_string()),
                            }
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let skipped = detector.scripts.stats.skipped.load(Ordering::Relaxed);
                if skipped > 0 && last_overload_report.elapsed() > Duration::from_secs(10) {
                    last_overload_report = Instant::now();
                    tracing::error!(
                        skipped,
                        "script queue full: message scripts skipped (messages are stored)"
                    );
                }
                run_periodic(&detector, &fault);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the script worker could not start");
    }
}

fn run_periodic(detector: &Detector, fault: &dyn Fn(&FieldId, &str, &str, String)) {
    let fields: Vec<(FieldId, Arc<FieldScripts>)> = detector
        .scripts
        .fields
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (field, scripts) in fields {
        for s in &scripts.periodic {
            {
                let mut next = lock(&s.next);
                if Instant::now() < *next {
                    continue;
                }
                *next = Instant::now() + s.every;
            }
            let now = now_ms();
            let devices = detector.device_views(&field, 10_000);
            let field_json = serde_json::json!({"id": field.0});
            let p = lock(&s.program);
            detector.scripts.stats.runs.fetch_add(1, Ordering::Relaxed);
            match p.call("on_tick", &[devices, field_json, serde_json::json!(now)]) {
                Ok(out) => {
                    for e in out {
                        let (device, f) = finding(p.name(), e);
                        detector.emit_found(Found {
                            field: field.clone(),
                            device: device.map(DeviceId),
                            finding: f,
                            at: now,
                        });
                    }
                }
                Err(e) => fault(&field, p.name(), e.kind(), e.to_string()),
            }
        }
    }
}
