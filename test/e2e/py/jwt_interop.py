"""py-spiffe (PyPI `spiffe`, unmodified) against our agent's JWT Workload API methods.

Usage: jwt_interop.py <socket> <audience>
Fetches a JWT-SVID, validates it through the agent and offline against the fetched JWT
bundle, and prints one line per check.
"""
import sys

from spiffe import JwtSvid, TrustDomain, WorkloadApiClient

socket, audience = sys.argv[1], sys.argv[2]
with WorkloadApiClient(socket_path="unix://" + socket, default_timeout=20) as client:
    svid = client.fetch_jwt_svid(audience={audience})
    print("fetched", svid.spiffe_id, sorted(svid.audience))
    validated = client.validate_jwt_svid(svid.token, audience)
    print("agent-validated", validated.spiffe_id)
    bundles = client.fetch_jwt_bundles()
    td = TrustDomain(str(svid.spiffe_id.trust_domain))
    bundle = bundles.get_bundle_for_trust_domain(td)
    offline = JwtSvid.parse_and_validate(svid.token, bundle, {audience})
    print("offline-validated", offline.spiffe_id)
    try:
        client.validate_jwt_svid(svid.token, "not-" + audience)
        print("wrong audience accepted")
    except Exception as e:  # the agent's InvalidArgument, wrapped by py-spiffe
        print("wrong-audience-refused", type(e).__name__)
