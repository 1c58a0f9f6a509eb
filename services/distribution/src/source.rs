//! Where keys come from: submission's `StreamDiagnosisKeys`, the only way keys leave it.

use futures::StreamExt;
use futures::stream::BoxStream;
use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_protocol::submission::v1::submission_service_client::SubmissionServiceClient;
use openwarn_protocol::submission::v1::{DiagnosisKey, StreamDiagnosisKeysRequest};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, thiserror::Error)]
#[error("submission unavailable: {0}")]
pub struct SourceError(pub String);

/// Batches of keys submitted in `[from_hour, until_hour)`.
pub type KeyStream = BoxStream<'static, Result<Vec<DiagnosisKey>, SourceError>>;

#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    async fn stream(&self, from_hour: i64, until_hour: i64) -> Result<KeyStream, SourceError>;
}

/// The submission service over mutual-TLS gRPC.
#[derive(Debug, Clone)]
pub struct Submission {
    client: SubmissionServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
}

impl Submission {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: SubmissionServiceClient::with_interceptor(channel, TraceContextInterceptor)
                // A page is ~1000 keys (~60 KB); allow for larger pages.
                .max_decoding_message_size(64 * 1024 * 1024),
        }
    }
}

#[async_trait::async_trait]
impl KeySource for Submission {
    async fn stream(&self, from_hour: i64, until_hour: i64) -> Result<KeyStream, SourceError> {
        let response = openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.submission.v1.SubmissionService/StreamDiagnosisKeys",
            self.client
                .clone()
                .stream_diagnosis_keys(StreamDiagnosisKeysRequest {
                    from_hour,
                    until_hour,
                }),
        )
        .await
        .map_err(|s| SourceError(format!("{:?}: {}", s.code(), s.message())))?;
        Ok(response
            .into_inner()
            .map(|batch| {
                batch
                    .map(|b| b.keys)
                    .map_err(|s| SourceError(format!("{:?}: {}", s.code(), s.message())))
            })
            .boxed())
    }
}

/// Keys held in memory: the test double of submission.
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    pub keys: std::sync::Arc<std::sync::Mutex<Vec<DiagnosisKey>>>,
}

impl InMemory {
    pub fn push(&self, key: DiagnosisKey) {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key);
    }
}

#[async_trait::async_trait]
impl KeySource for InMemory {
    async fn stream(&self, from_hour: i64, until_hour: i64) -> Result<KeyStream, SourceError> {
        let mut keys: Vec<DiagnosisKey> = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|k| (from_hour..until_hour).contains(&k.submission_hour))
            .cloned()
            .collect();
        keys.sort_by(|a, b| {
            (a.submission_hour, &a.key_data, a.submission_type).cmp(&(
                b.submission_hour,
                &b.key_data,
                b.submission_type,
            ))
        });
        let pages: Vec<Result<Vec<DiagnosisKey>, SourceError>> =
            keys.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        Ok(futures::stream::iter(pages).boxed())
    }
}
