//! The `rest` connector: any carrier REST API, described by [`RestTemplates`] — one request
//! template per operation and JSON pointers saying where the answers hold the state, the session
//! and the byte counts.
//!
//! - Placeholders: `{imsi}`, `{iccid}`, or `{id}` (the identifier the call was given). A call given
//!   an ICCID for a template that needs `{imsi}` first runs the `resolve` template and reads the IMSI
//!   at `imsi_pointer`; without a `resolve` template it fails as `Invalid`, as does a call given an
//!   IMSI for a template that needs `{iccid}`.
//! - Suspend/resume: a `2xx` whose JSON answer holds a state at `state_pointer` is read as the status;
//!   any other `2xx` is followed by a status read. A `409` is settled by a status read (see the
//!   crate's idempotency rule).
//! - Usage: the sums at `uplink_pointer` and `downlink_pointer` (see [`RestTemplates`]).

use crate::http::{Ctx, HttpCore, Reply, Req, Want, run};
use crate::template::{Escape, Values, fill, one, sum, used};
use crate::{
    CarrierError, CarrierFuture, Op, OpTemplate, RestTemplates, SimControl, SimId, SimState,
    SimStatus, SimUsage,
};
use reqwest::Method;
use serde_json::Value;

/// The template-driven connector (`kind = "rest"`).
pub struct Rest {
    http: HttpCore,
    t: RestTemplates,
}

impl Rest {
    pub(crate) fn new(http: HttpCore, t: RestTemplates) -> Self {
        Self { http, t }
    }

    fn needs_imsi(t: &OpTemplate) -> bool {
        used(&t.path).chain(used(&t.body)).any(|p| p == "imsi")
    }

    /// Sends an operation's request, looking the IMSI up first when needed.
    async fn request(&self, ctx: &Ctx<'_>, t: &OpTemplate) -> Result<Reply, CarrierError> {
        let mut values = Values {
            imsi: None,
            iccid: None,
            id: ctx.sim.as_str(),
        };
        let looked_up;
        match ctx.sim {
            SimId::Imsi(s) => values.imsi = Some(s),
            SimId::Iccid(s) => {
                values.iccid = Some(s);
                if Self::needs_imsi(t) {
                    looked_up = self.resolve(ctx, values).await?;
                    values.imsi = Some(&looked_up);
                }
            }
        }
        self.send(ctx, t, values).await
    }

    async fn send(
        &self,
        ctx: &Ctx<'_>,
        t: &OpTemplate,
        values: Values<'_>,
    ) -> Result<Reply, CarrierError> {
        let method = Method::from_bytes(t.method.as_bytes())
            .map_err(|_| CarrierError::Invalid(format!("method {}", t.method)))?;
        let body = if t.body.is_empty() {
            None
        } else {
            Some(fill(&t.body, values, Escape::Json)?.into_bytes())
        };
        let req = Req {
            method,
            path: fill(&t.path, values, Escape::Path)?,
            body,
        };
        self.http.send(ctx, &req).await
    }

    async fn resolve(&self, ctx: &Ctx<'_>, values: Values<'_>) -> Result<String, CarrierError> {
        if self.t.resolve.path.is_empty() {
            return Err(CarrierError::Invalid(
                "this carrier's templates need the IMSI and no resolve template is configured"
                    .into(),
            ));
        }
        let v = self
            .send(ctx, &self.t.resolve, values)
            .await?
            .json_required()?;
        let imsi = one(&v, &self.t.imsi_pointer)
            .and_then(scalar)
            .ok_or_else(|| {
                CarrierError::BadResponse(format!("no IMSI at {}", self.t.imsi_pointer))
            })?;
        SimId::imsi(&imsi).map(|_| imsi).map_err(|_| {
            CarrierError::BadResponse("the ICCID look-up answered no valid IMSI".into())
        })
    }

    async fn read(&self, ctx: &Ctx<'_>) -> Result<SimStatus, CarrierError> {
        let v = self.request(ctx, &self.t.status).await?.json_required()?;
        self.status_of(&v)
    }

    async fn transition(&self, ctx: &Ctx<'_>, want: Want) -> Result<SimStatus, CarrierError> {
        let t = match want {
            Want::Suspended => &self.t.suspend,
            Want::Active => &self.t.resume,
        };
        match self.request(ctx, t).await {
            // The change is made; an answer without a readable state only costs a status read.
            Ok(reply) => match reply.json().ok().flatten().map(|v| self.status_of(&v)) {
                Some(Ok(status)) => Ok(status),
                _ => self.read(ctx).await,
            },
            Err(CarrierError::Refused {
                status: 409,
                message,
            }) => want.settle(self.read(ctx).await?, message),
            Err(e) => Err(e),
        }
    }

    async fn traffic(&self, ctx: &Ctx<'_>) -> Result<SimUsage, CarrierError> {
        let v = self.request(ctx, &self.t.usage).await?.json_required()?;
        Ok(SimUsage {
            uplink_bytes: sum(&v, &self.t.uplink_pointer)?,
            downlink_bytes: sum(&v, &self.t.downlink_pointer)?,
        })
    }

    fn status_of(&self, v: &Value) -> Result<SimStatus, CarrierError> {
        let t = &self.t;
        let raw = one(v, &t.state_pointer)
            .and_then(scalar)
            .ok_or_else(|| CarrierError::BadResponse(format!("no state at {}", t.state_pointer)))?;
        let is = |list: &[String]| list.iter().any(|x| x.eq_ignore_ascii_case(&raw));
        let state = if is(&t.active_values) {
            SimState::Active
        } else if is(&t.suspended_values) {
            SimState::Suspended
        } else if is(&t.terminated_values) {
            SimState::Terminated
        } else {
            SimState::Unknown(raw)
        };
        let text = |p: &str| {
            if p.is_empty() {
                None
            } else {
                one(v, p).and_then(scalar)
            }
        };
        Ok(SimStatus {
            imsi: text(&t.imsi_pointer),
            iccid: text(&t.iccid_pointer),
            msisdn: text(&t.msisdn_pointer),
            state,
            online: text(&t.online_pointer).and_then(|s| match s.to_ascii_lowercase().as_str() {
                "true" | "online" | "1" => Some(true),
                "false" | "offline" | "0" => Some(false),
                _ => None,
            }),
            ip: text(&t.ip_pointer).and_then(|s| s.parse().ok()),
        })
    }
}

/// A string as it is, a number or boolean as its JSON text; objects and arrays are not scalars.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

impl SimControl for Rest {
    fn name(&self) -> &'static str {
        "rest"
    }

    fn suspend<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        Box::pin(run(Op::Suspend, sim, move |ctx| async move {
            self.transition(&ctx, Want::Suspended).await
        }))
    }

    fn resume<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        Box::pin(run(Op::Resume, sim, move |ctx| async move {
            self.transition(&ctx, Want::Active).await
        }))
    }

    fn status<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimStatus> {
        Box::pin(run(Op::Status, sim, move |ctx| async move {
            self.read(&ctx).await
        }))
    }

    fn usage<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimUsage> {
        Box::pin(run(Op::Usage, sim, move |ctx| async move {
            self.traffic(&ctx).await
        }))
    }
}
