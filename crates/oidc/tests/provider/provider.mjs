// A real, certified OpenID provider (panva's oidc-provider) on loopback for
// the tests (openwarn_testkit::oidc_provider: crates/oidc and the portal). Test use only.
//
//   node provider.mjs <redirect_uri> <client_secret>
//
// Listens on 127.0.0.1 on a free port and prints `issuer http://127.0.0.1:PORT` on stdout once
// it serves. One confidential client, `portal` (client_secret_basic, PKCE), may use
// <redirect_uri>. The development login form takes any login: `officer1` has the roles
// ["officer"], `admin1` ["admin"], any other login none. ID tokens carry `roles` and
// `preferred_username` (scopes `roles` and `profile`) and are signed RS256 with a key made at
// start-up; the test finds the rest through discovery.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// Its start-up warnings are expected here (the in-memory adapter and the development login
// forms are what a test wants; Node 20 works though 22 is what it asks for): not printed.
const warn = console.warn;
console.warn = (...args) => {
  if (!String(args[0]).startsWith('oidc-provider WARNING')) warn(...args);
};
const { default: Provider } = await import('oidc-provider');

const [redirectUri, clientSecret] = process.argv.slice(2);
if (!redirectUri || !clientSecret) {
  console.error('usage: node provider.mjs <redirect_uri> <client_secret>');
  process.exit(2);
}

const ROLES = { officer1: ['officer'], admin1: ['admin'] };

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'portal',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'profile', 'roles'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      roles: ['roles'],
    },
    // The scope's claims go into the ID token too, not only to the userinfo endpoint.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, preferred_username: sub, name: `Test ${sub}`, roles: ROLES[sub] ?? [] };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});

// The test closes our stdin (or dies): stop with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
