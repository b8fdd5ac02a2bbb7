//! The `mvno` connector: the API shape widespread among IoT MVNOs, where a SIM's subscription (the
//! "subscriber") is addressed by IMSI.
//!
//! | operation | request | answer |
//! |---|---|---|
//! | suspend | `POST /v1/subscribers/{imsi}/deactivate` | the subscriber |
//! | resume | `POST /v1/subscribers/{imsi}/activate` | the subscriber |
//! | status | `GET /v1/subscribers/{imsi}` | the subscriber |
//! | usage | `GET /v1/stats/air/subscribers/{imsi}?from=0&to={now}&period=month` | traffic statistics |
//! | ICCID → IMSI | `GET /v1/sims/{iccid}` | an object with `imsi` |
//!
//! A subscriber is read as `{"imsi", "iccid", "msisdn", "status", "sessionStatus": {"online",
//! "ipAddress"}}`; `status` `active` is active, `inactive` and `suspended` are suspended,
//! `terminated` is terminated, any other word (`ready`, `standby`, …) is reported as it is.
//!
//! Usage is cumulative since the SIM's first statistics: the answer is a list of periods, each
//! `{"unixtime", "dataTrafficStatsMap": {"<speed class>": {"uploadByteSizeTotal",
//! "downloadByteSizeTotal"}}}`; every period and every speed class is added up (upload = uplink).
//!
//! A call given an ICCID first looks the IMSI up (one more request, counted in the attempts): this
//! API addresses subscriptions, and the card's current subscription is what carries traffic.
//! A `2xx` to deactivate/activate answers the subscriber, which is returned; a `2xx` without one
//! is followed by a status read; a `409` is settled by a status read (see the crate's idempotency rule).

use crate::http::{Ctx, HttpCore, Req, Want, run};
use crate::template::{one, sum};
use crate::{CarrierError, CarrierFuture, Op, SimControl, SimId, SimState, SimStatus, SimUsage};
use serde_json::Value;

/// The IoT-MVNO connector (`kind = "mvno"`).
pub struct Mvno {
    http: HttpCore,
}

impl Mvno {
    pub(crate) fn new(http: HttpCore) -> Self {
        Self { http }
    }

    /// The IMSI of the SIM: given, or looked up by ICCID.
    async fn imsi(&self, ctx: &Ctx<'_>) -> Result<String, CarrierError> {
        match ctx.sim {
            SimId::Imsi(imsi) => Ok(imsi.clone()),
            SimId::Iccid(iccid) => {
                let v = self
                    .http
                    .send(ctx, &Req::get(format!("/v1/sims/{iccid}")))
                    .await?
                    .json_required()?;
                let imsi = one(&v, "/imsi").and_then(Value::as_str).ok_or_else(|| {
                    CarrierError::BadResponse(format!("no imsi for ICCID {iccid}"))
                })?;
                SimId::imsi(imsi)
                    .map(|id| id.as_str().to_owned())
                    .map_err(|_| {
                        CarrierError::BadResponse(format!(
                            "ICCID {iccid} has an IMSI that is not one"
                        ))
                    })
            }
        }
    }

    async fn read(&self, ctx: &Ctx<'_>, imsi: &str) -> Result<SimStatus, CarrierError> {
        let v = self
            .http
            .send(ctx, &Req::get(format!("/v1/subscribers/{imsi}")))
            .await?
            .json_required()?;
        subscriber(&v)
    }

    async fn transition(&self, ctx: &Ctx<'_>, want: Want) -> Result<SimStatus, CarrierError> {
        let imsi = self.imsi(ctx).await?;
        let action = match want {
            Want::Suspended => "deactivate",
            Want::Active => "activate",
        };
        let req = Req::post(format!("/v1/subscribers/{imsi}/{action}"));
        match self.http.send(ctx, &req).await {
            // The change is made; an answer without a readable subscriber only costs a status read.
            Ok(reply) => match reply.json().ok().flatten().map(|v| subscriber(&v)) {
                Some(Ok(status)) => Ok(status),
                _ => self.read(ctx, &imsi).await,
            },
            Err(CarrierError::Refused {
                status: 409,
                message,
            }) => want.settle(self.read(ctx, &imsi).await?, message),
            Err(e) => Err(e),
        }
    }

    async fn traffic(&self, ctx: &Ctx<'_>) -> Result<SimUsage, CarrierError> {
        let imsi = self.imsi(ctx).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let path = format!("/v1/stats/air/subscribers/{imsi}?from=0&to={now}&period=month");
        let v = self
            .http
            .send(ctx, &Req::get(path))
            .await?
            .json_required()?;
        if !v.is_array() {
            return Err(CarrierError::BadResponse(
                "traffic statistics are not a list".into(),
            ));
        }
        Ok(SimUsage {
            uplink_bytes: sum(&v, "/*/dataTrafficStatsMap/*/uploadByteSizeTotal")?,
            downlink_bytes: sum(&v, "/*/dataTrafficStatsMap/*/downloadByteSizeTotal")?,
        })
    }
}

/// A subscriber object as a [`SimStatus`].
fn subscriber(v: &Value) -> Result<SimStatus, CarrierError> {
    let text = |p: &str| one(v, p).and_then(Value::as_str).map(str::to_owned);
    let status = text("/status")
        .ok_or_else(|| CarrierError::BadResponse("a subscriber without status".into()))?;
    let state = match status.as_str() {
        "active" => SimState::Active,
        "inactive" | "suspended" => SimState::Suspended,
        "terminated" => SimState::Terminated,
        _ => SimState::Unknown(status),
    };
    Ok(SimStatus {
        imsi: text("/imsi"),
        iccid: text("/iccid"),
        msisdn: text("/msisdn"),
        state,
        online: one(v, "/sessionStatus/online").and_then(Value::as_bool),
        ip: text("/sessionStatus/ipAddress").and_then(|s| s.parse().ok()),
    })
}

impl SimControl for Mvno {
    fn name(&self) -> &'static str {
        "mvno"
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
            let imsi = self.imsi(&ctx).await?;
            self.read(&ctx, &imsi).await
        }))
    }

    fn usage<'a>(&'a self, sim: &'a SimId) -> CarrierFuture<'a, SimUsage> {
        Box::pin(run(Op::Usage, sim, move |ctx| async move {
            self.traffic(&ctx).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribers_are_read() {
        let s = subscriber(&json!({
            "imsi": "440103000000001", "iccid": "8981100000000000001", "msisdn": "819000000001",
            "status": "inactive", "speedClass": "s1.standard",
            "sessionStatus": {"online": true, "ipAddress": "10.1.2.3"}
        }))
        .unwrap();
        assert_eq!(s.state, SimState::Suspended);
        assert_eq!(s.online, Some(true));
        assert_eq!(s.ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(s.msisdn.as_deref(), Some("819000000001"));
        let s = subscriber(&json!({"status": "ready", "sessionStatus": null})).unwrap();
        assert_eq!(
            (s.state, s.online, s.ip),
            (SimState::Unknown("ready".into()), None, None)
        );
        assert_eq!(
            subscriber(&json!({"imsi": "1"})).unwrap_err().code(),
            "bad_response"
        );
    }
}
