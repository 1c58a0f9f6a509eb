//! Who may call which internal RPC: the one table every gRPC server enforces
//! (`openwarn_bootstrap::callers`). A caller is named by its certificate: the DNS name in its
//! subject alternative names (`submission`, `portal`, …), which the dev PKI and the cert-manager
//! examples issue exactly so. Every pair not listed — an unknown method included — is refused
//! with `PERMISSION_DENIED`.

/// `(gRPC path, the services allowed to call it)`.
pub const CALLERS: &[(&str, &[&str])] = &[
    (
        "/openwarn.verification.v1.VerificationService/VerifyTan",
        &["submission"],
    ),
    (
        "/openwarn.verification.v1.VerificationService/ReserveTan",
        &["submission"],
    ),
    (
        "/openwarn.verification.v1.VerificationService/CommitTan",
        &["submission"],
    ),
    (
        "/openwarn.verification.v1.VerificationService/ReleaseTan",
        &["submission"],
    ),
    (
        "/openwarn.verification.v1.VerificationService/IssueTeleTan",
        &["portal"],
    ),
    (
        "/openwarn.testresult.v1.TestResultService/GetTestResult",
        &["verification"],
    ),
    (
        "/openwarn.testresult.v1.TestResultService/MarkRedeemed",
        &["verification"],
    ),
    (
        "/openwarn.submission.v1.SubmissionService/StreamDiagnosisKeys",
        &["distribution"],
    ),
];

/// Every identity that calls or serves internal RPCs.
pub const IDENTITIES: &[&str] = &[
    "proxy",
    "verification",
    "submission",
    "test-result",
    "portal",
    "distribution",
];

/// The callers allowed for `path`; `None` for a method no one may call.
pub fn allowed(path: &str) -> Option<&'static [&'static str]> {
    CALLERS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, callers)| *callers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_is_a_known_identity_and_every_method_is_listed_once() {
        let mut paths: Vec<&str> = CALLERS.iter().map(|(p, _)| *p).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), CALLERS.len());
        for (_, callers) in CALLERS {
            assert!(
                callers.iter().all(|c| IDENTITIES.contains(c)),
                "{callers:?}"
            );
        }
        assert_eq!(
            allowed("/openwarn.verification.v1.VerificationService/IssueTeleTan"),
            Some(&["portal"][..])
        );
        assert_eq!(allowed("/grpc.reflection.v1.ServerReflection/Info"), None);
    }
}
