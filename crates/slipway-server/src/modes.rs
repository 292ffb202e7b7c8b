//! Execution modes (CodePipeline V2), per project and pipeline: `queued` runs executions one
//! at a time in the order they started; `superseded` lets one execution into each stage at a
//! time with at most one waiting before it, a newer arrival superseding the waiting one;
//! `parallel` constrains nothing.
//!
//! The lanes live in memory: after a restart, recovered executions line up again in the
//! order recovery resumes them (oldest first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use slipway_engine::StageGate;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The executions of one pipeline of one project.
pub struct Lane {
    /// `queued` mode: one permit; tokio's semaphore serves waiters first come, first served.
    one_at_a_time: Arc<Semaphore>,
    stages: Mutex<HashMap<String, StageSeat>>,
}

#[derive(Default)]
struct StageSeat {
    occupied: bool,
    /// The one execution waiting to enter: its number, and where to tell it the outcome
    /// (`true`: the stage is handed to it; `false`: superseded).
    waiting: Option<(u64, oneshot::Sender<bool>)>,
}

#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<(i64, String), Arc<Lane>>>,
}

impl Lanes {
    pub fn lane(&self, project_id: i64, pipeline: &str) -> Arc<Lane> {
        let mut l = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        l.entry((project_id, pipeline.to_string()))
            .or_insert_with(|| {
                Arc::new(Lane {
                    one_at_a_time: Arc::new(Semaphore::new(1)),
                    stages: Mutex::default(),
                })
            })
            .clone()
    }
}

impl Lane {
    /// `queued` mode: waits for the lane's turn.
    pub async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        self.one_at_a_time.clone().acquire_owned().await.ok()
    }

    /// The stage gate for one execution (`superseded` mode).
    pub fn gate(self: &Arc<Self>, number: u64) -> Arc<dyn StageGate> {
        Arc::new(Gate {
            lane: self.clone(),
            number,
        })
    }
}

struct Gate {
    lane: Arc<Lane>,
    number: u64,
}

/// Holds a stage; dropping it hands the stage to the execution waiting for it, if any.
struct Seat {
    lane: Arc<Lane>,
    stage: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut stages = self.lane.stages.lock().unwrap_or_else(|e| e.into_inner());
        let seat = stages.entry(self.stage.clone()).or_default();
        // Handed over, the stage stays occupied, now by the waiter; a waiter that gave up
        // (cancelled) leaves nobody waiting.
        if let Some((_, tx)) = seat.waiting.take()
            && tx.send(true).is_ok()
        {
            return;
        }
        seat.occupied = false;
    }
}

#[async_trait]
impl StageGate for Gate {
    async fn enter(&self, stage: &str) -> Option<Box<dyn Send>> {
        let rx = {
            let mut stages = self.lane.stages.lock().unwrap_or_else(|e| e.into_inner());
            let seat = stages.entry(stage.to_string()).or_default();
            if !seat.occupied {
                seat.occupied = true;
                None
            } else {
                if let Some((n, tx)) = seat.waiting.take() {
                    if n > self.number {
                        // A newer execution already waits: this older one is the superseded one.
                        seat.waiting = Some((n, tx));
                        return None;
                    }
                    let _ = tx.send(false);
                }
                let (tx, rx) = oneshot::channel();
                seat.waiting = Some((self.number, tx));
                Some(rx)
            }
        };
        if let Some(rx) = rx {
            match rx.await {
                Ok(true) => {}
                _ => return None,
            }
        }
        Some(Box::new(Seat {
            lane: self.lane.clone(),
            stage: stage.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_execution_supersedes_the_one_waiting_and_the_stage_passes_on() {
        let lanes = Lanes::default();
        let lane = lanes.lane(1, "p");
        let first = lane.gate(1).enter("deploy").await.expect("free stage");
        let g2 = lane.gate(2);
        let second = tokio::spawn(async move { g2.enter("deploy").await.is_some() });
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let g3 = lane.gate(3);
        let third = tokio::spawn(async move { g3.enter("deploy").await.map(|_| ()) });
        assert!(!second.await.unwrap(), "#2 waited and was superseded by #3");
        drop(first);
        assert!(
            third.await.unwrap().is_some(),
            "#3 gets the stage when #1 leaves it"
        );
        // Free again once #3's seat is gone.
        assert!(lane.gate(4).enter("deploy").await.is_some());
    }

    #[tokio::test]
    async fn other_stages_and_other_pipelines_do_not_wait() {
        let lanes = Lanes::default();
        let a = lanes.lane(1, "p").gate(1).enter("build").await;
        let b = lanes.lane(1, "p").gate(2).enter("test").await;
        let c = lanes.lane(1, "q").gate(3).enter("build").await;
        assert!(a.is_some() && b.is_some() && c.is_some());
    }

    #[tokio::test]
    async fn queued_turns_are_first_come_first_served() {
        let lane = Lanes::default().lane(1, "p");
        let first = lane.turn().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for n in 2..=4 {
            let lane = lane.clone();
            let order = order.clone();
            handles.push(tokio::spawn(async move {
                let _t = lane.turn().await;
                order.lock().unwrap().push(n);
            }));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(first);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![2, 3, 4]);
    }
}
