//! Services whose methods are all `Unimplemented`: LocalAuthority when the context has no CA
//! manager, and Logger when the server has no log level to control. They
//! are routed anyway so that authorization answers first, exactly as for the implemented
//! services.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;

macro_rules! unimplemented_service {
    ($(#[$doc:meta])* $name:ident, $service:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub(crate) struct $name;

        impl NamedService for $name {
            const NAME: &'static str = $service;
        }

        impl Service<http::Request<Body>> for $name {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = Ready<Result<Self::Response, Infallible>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<Body>) -> Self::Future {
                let status = Status::unimplemented(format!(
                    "method {} not implemented",
                    request.uri().path().rsplit('/').next().unwrap_or_default()
                ));
                let (parts, ()) = status.into_http::<()>().into_parts();
                ready(Ok(http::Response::from_parts(parts, Body::default())))
            }
        }
    };
}

unimplemented_service!(
    /// `spire.api.server.localauthority.v1.LocalAuthority` (CA rotation control).
    LocalAuthority,
    "spire.api.server.localauthority.v1.LocalAuthority"
);
unimplemented_service!(
    /// `spire.api.server.logger.v1.Logger` (runtime log level).
    Logger,
    "spire.api.server.logger.v1.Logger"
);
