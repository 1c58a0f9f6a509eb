//! `StreamDiagnosisKeys` for distribution: pages of keys sent as they are read, with a bounded
//! channel between reader and sender, so memory stays bounded whatever the range.

use crate::store::{Cursor, Store, StoredKey};
use openwarn_domain::VisitedCountries;
use openwarn_protocol::submission::v1::submission_service_server::{
    SubmissionService, SubmissionServiceServer,
};
use openwarn_protocol::submission::v1::{
    DiagnosisKey, DiagnosisKeyBatch, StreamDiagnosisKeysRequest,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub const PAGE_SIZE: i64 = 5000;

pub fn server(store: Store) -> SubmissionServiceServer<Grpc> {
    SubmissionServiceServer::new(Grpc { store })
}

pub struct Grpc {
    store: Store,
}

/// A stored key as distribution gets it.
fn to_wire(k: StoredKey) -> Result<DiagnosisKey, Status> {
    // Written only from parsed codes: a value that does not parse is a broken row.
    let visited_countries = VisitedCountries::from_db(&k.visited_countries).map_err(|e| {
        tracing::error!(error = %e, "a stored key has malformed visited countries");
        Status::internal("a stored key is malformed")
    })?;
    Ok(DiagnosisKey {
        key_data: k.key_data,
        rolling_start_interval_number: k.rolling_start_interval_number,
        rolling_period: k.rolling_period,
        transmission_risk_level: k.transmission_risk_level,
        report_type: k.report_type,
        days_since_onset_of_symptoms: k.days_since_onset_of_symptoms,
        origin: k.origin,
        visited_countries: visited_countries.to_strings(),
        consent_to_federation: k.consent_to_federation,
        submission_type: k.submission_type,
        submission_hour: k.submission_hour,
    })
}

#[tonic::async_trait]
impl SubmissionService for Grpc {
    type StreamDiagnosisKeysStream = ReceiverStream<Result<DiagnosisKeyBatch, Status>>;

    async fn stream_diagnosis_keys(
        &self,
        request: Request<StreamDiagnosisKeysRequest>,
    ) -> Result<Response<Self::StreamDiagnosisKeysStream>, Status> {
        let StreamDiagnosisKeysRequest {
            from_hour,
            until_hour,
        } = request.into_inner();
        if from_hour < 0 || until_hour < from_hour {
            return Err(Status::invalid_argument(
                "need 0 <= from_hour <= until_hour",
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut after = None;
            loop {
                let page = match store
                    .keys_page(from_hour, until_hour, after.take(), PAGE_SIZE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = Some(Cursor {
                    submission_hour: last.submission_hour,
                    key_data: last.key_data.clone(),
                    rolling_start_interval_number: last.rolling_start_interval_number,
                    submission_type: last.submission_type,
                });
                let full = page.len() as i64 == PAGE_SIZE;
                let keys = page
                    .into_iter()
                    .map(to_wire)
                    .collect::<Result<Vec<_>, Status>>();
                let keys = match keys {
                    Ok(keys) => keys,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                if tx.send(Ok(DiagnosisKeyBatch { keys })).await.is_err() || !full {
                    return; // the caller went away, or that was the last page
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
