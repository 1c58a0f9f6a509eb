//! Internal gRPC for verification: `GetTestResult`, `MarkRedeemed`.

use crate::store::Store;
use openwarn_domain::HashedGuid;
use openwarn_protocol::testresult::v1::test_result_service_server::{
    TestResultService, TestResultServiceServer,
};
use openwarn_protocol::testresult::v1::{
    GetTestResultRequest, GetTestResultResponse, MarkRedeemedRequest, MarkRedeemedResponse,
    TestResult as WireTestResult,
};
use tonic::{Request, Response, Status};

pub fn server(store: Store) -> TestResultServiceServer<Grpc> {
    TestResultServiceServer::new(Grpc { store })
}

pub struct Grpc {
    store: Store,
}

/// Most results one `MarkRedeemed` call may mark.
pub const MAX_MARKS_PER_CALL: usize = 1000;

fn checked(hashed_guid: String) -> Result<HashedGuid, Status> {
    HashedGuid::try_from(hashed_guid).map_err(|_| {
        Status::invalid_argument(
            "hashed_guid must match ^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$ (read as lower case)",
        )
    })
}

#[tonic::async_trait]
impl TestResultService for Grpc {
    async fn get_test_result(
        &self,
        request: Request<GetTestResultRequest>,
    ) -> Result<Response<GetTestResultResponse>, Status> {
        let hashed_guid = checked(request.into_inner().hashed_guid)?;
        let now = openwarn_bootstrap::lifecycle::unix_now();
        let found = self.store.get_or_create_pending(hashed_guid, now).await?;
        Ok(Response::new(GetTestResultResponse {
            result: WireTestResult::from(found.result).into(),
            held_until: self.store.held_until(&found),
            sample_collected_at: found.sample_collected_at,
            lab_id: found.lab_id,
        }))
    }

    async fn mark_redeemed(
        &self,
        request: Request<MarkRedeemedRequest>,
    ) -> Result<Response<MarkRedeemedResponse>, Status> {
        let request = request.into_inner();
        let ids: Vec<HashedGuid> = std::iter::once(request.hashed_guid)
            .filter(|id| !id.is_empty())
            .chain(request.hashed_guids)
            .map(checked)
            .collect::<Result<_, _>>()?;
        if ids.is_empty() || ids.len() > MAX_MARKS_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "between 1 and {MAX_MARKS_PER_CALL} hashed GUIDs per call"
            )));
        }
        let now = openwarn_bootstrap::lifecycle::unix_now();
        // Written together: the store's batcher takes them as one batch (or a few full ones).
        for marked in
            futures::future::join_all(ids.into_iter().map(|id| self.store.mark_redeemed(id, now)))
                .await
        {
            marked?;
        }
        Ok(Response::new(MarkRedeemedResponse {}))
    }
}
