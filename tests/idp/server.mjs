// A real OpenID provider for the gateway's tests: node-oidc-provider (pinned in
// package.json / package-lock.json) with two clients, a few test accounts, JWT
// access tokens for the gateway's resource indicator, Back-Channel Logout and
// RP-initiated logout. Test-only: listens on loopback, no TLS, no persistence.
//
//   node server.mjs --port 0 --gateway http://127.0.0.1:8080 [--jwks keys.json]
//
// Options (each also as an environment variable IDP_<NAME>):
//   --port N          port on 127.0.0.1 (0 = any free one); the first line on stdout is
//                     "listening <issuer>" once the provider answers
//   --gateway URL     the gateway's public origin: redirect_uri = URL/auth/oidc/callback,
//                     post_logout_redirect_uri = URL/auth/login,
//                     backchannel_logout_uri = URL/auth/oidc/backchannel-logout
//   --jwks FILE       private JWKS ({"keys": [...]}) to sign with; the first key of each
//                     alg signs. Without it a fresh RS256 key is made.
//   --resource URI    the resource indicator (= access token audience) of the gateway's API
//   --at-ttl SECONDS  access token lifetime (default 300)
//   --rt-ttl SECONDS  refresh token lifetime (default 3600)
//   --jwks-max-age N  answer /jwks with "Cache-Control: public, max-age=N" (default: no header)
//
// Test hooks (loopback only, this is a test server):
//   POST /__test/jwks     body = private JWKS: replace the signing keys without a restart
//                         (sessions, grants and refresh tokens survive: same memory adapter)
//   POST /__test/backchannel-logout  {"sub": "...", "sid": "..."?}: send a logout token
//                         for the web client now, as if the user had logged out elsewhere
//
// Clients:
//   portal-web / portal-web-secret   confidential, authorization_code + refresh_token,
//                                    PKCE S256 required, back-channel logout with sid
//   portal-api / portal-api-secret   client_credentials, scopes "portal:read portal:write"
// Accounts (login / password):
//   anna / anna-idp-pass, markus / markus-idp-pass, eva / eva-idp-pass,
//   trick / trick-idp-pass (phone_number with a bidi override and a second number)

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.IDP_PORT ?? '0' },
    gateway: { type: 'string', default: process.env.IDP_GATEWAY ?? 'http://127.0.0.1:8080' },
    jwks: { type: 'string', default: process.env.IDP_JWKS ?? '' },
    resource: { type: 'string', default: process.env.IDP_RESOURCE ?? 'urn:portal-gateway' },
    'at-ttl': { type: 'string', default: process.env.IDP_AT_TTL ?? '300' },
    'rt-ttl': { type: 'string', default: process.env.IDP_RT_TTL ?? '3600' },
    'jwks-max-age': { type: 'string', default: process.env.IDP_JWKS_MAX_AGE ?? '' },
  },
});

const ACCOUNTS = {
  anna: {
    password: 'anna-idp-pass',
    claims: {
      email: 'anna.huber@example.at', email_verified: true, name: 'Anna Huber',
      phone_number: '+436641000001', phone_number_verified: true,
    },
  },
  markus: {
    password: 'markus-idp-pass',
    claims: { email: 'markus.mayr@example.at', email_verified: true, name: 'Markus Mayr' },
  },
  eva: {
    password: 'eva-idp-pass',
    claims: { email: 'eva.lechner@example.at', email_verified: false, name: 'Eva Lechner' },
  },
  trick: {
    password: 'trick-idp-pass',
    claims: {
      email: 'trick@example.at', email_verified: true, name: 'Mallory',
      phone_number: '+43664\u202e1000001,+436641000010', phone_number_verified: true,
    },
  },
};

function freshKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `idp-${Date.now()}`, alg: 'RS256', use: 'sig' }] };
}

function readJwks() {
  return args.jwks ? JSON.parse(readFileSync(args.jwks, 'utf8')) : freshKeys();
}

const gateway = args.gateway.replace(/\/+$/, '');
const resource = args.resource;
const atTtl = Number(args['at-ttl']);
const rtTtl = Number(args['rt-ttl']);

function configuration(jwks) {
  return {
    jwks,
    clients: [
      {
        client_id: 'portal-web',
        client_secret: 'portal-web-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${gateway}/auth/oidc/callback`],
        post_logout_redirect_uris: [`${gateway}/auth/login`, `${gateway}/`],
        backchannel_logout_uri: `${gateway}/auth/oidc/backchannel-logout`,
        backchannel_logout_session_required: true,
        id_token_signed_response_alg: 'RS256',
      },
      {
        client_id: 'portal-api',
        client_secret: 'portal-api-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'portal:read portal:write',
      },
    ],
    scopes: ['openid', 'offline_access', 'profile', 'email', 'phone', 'portal:read', 'portal:write'],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
      phone: ['phone_number', 'phone_number_verified'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf;
          return client.clientId === 'portal-api' ? resource : undefined;
        },
        useGrantedResource: async () => false,
        getResourceServerInfo: async (ctx, indicator) => {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: 'portal:read portal:write',
            audience: resource,
            accessTokenTTL: atTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: atTtl,
      ClientCredentials: atTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: rtTtl,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    findAccount: async (ctx, sub) => {
      const account = ACCOUNTS[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
    },
    // Loopback is exactly where the gateway under test lives: switch off the
    // SSRF guard for the back-channel logout POST.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    cookies: { keys: ['test-idp-cookie-key'] },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>error</title><h1>${escape(out.error)}</h1><p>${escape(out.error_description ?? '')}</p>`;
    },
  };
}

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
    + `<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

let provider;
let handler;
let issuer;

function build(jwks) {
  const p = new Provider(issuer, configuration(jwks));
  p.on('backchannel.error', (ctx, err) => console.error(`backchannel logout failed: ${err.message}`));
  p.on('server_error', (ctx, err) => console.error(`server error: ${err.stack}`));
  handler = p.callback();
  return p;
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (details.prompt.name === 'login') {
      res.end(page('Sign-in', `<form method="post" action="/interaction/${uid}">`
        + '<input type="hidden" name="prompt" value="login">'
        + '<label>Login <input name="login" autocomplete="username"></label>'
        + '<label>Password <input type="password" name="password" autocomplete="current-password"></label>'
        + '<button type="submit">Sign-in</button></form>'));
    } else {
      res.end(page('Authorize', `<p>${escape(details.params.client_id)} asks for ${escape(details.params.scope)}</p>`
        + `<form method="post" action="/interaction/${uid}">`
        + '<input type="hidden" name="prompt" value="consent">'
        + '<button type="submit">Continue</button></form>'));
    }
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  if (form.get('prompt') === 'login') {
    const login = form.get('login') ?? '';
    const account = Object.hasOwn(ACCOUNTS, login) ? ACCOUNTS[login] : undefined;
    if (!account || account.password !== form.get('password')) {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page('Sign-in failed', `<p>wrong login or password</p><a href="/interaction/${uid}">again</a>`));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const saved = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: saved } }, { mergeWithLastSubmission: true });
}

async function testHook(req, res, path) {
  const body = await readBody(req);
  if (path === '/__test/jwks') {
    provider = build(JSON.parse(body));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
    return;
  }
  if (path === '/__test/backchannel-logout') {
    const { sub, sid } = JSON.parse(body);
    const client = await provider.Client.find('portal-web');
    await client.backchannelLogout(sub, sid);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
    return;
  }
  res.statusCode = 404;
  res.end();
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const match = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
    if (match) {
      await interaction(req, res, match[1]);
    } else if (req.method === 'POST' && url.pathname.startsWith('/__test/')) {
      await testHook(req, res, url.pathname);
    } else {
      if (url.pathname === '/jwks' && args['jwks-max-age'] !== '') {
        res.setHeader('cache-control', `public, max-age=${Number(args['jwks-max-age'])}`);
      }
      handler(req, res);
    }
  } catch (err) {
    console.error(`request failed: ${err.stack}`);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('content-type', 'text/plain');
    }
    res.end('internal error');
  }
});

server.listen(Number(args.port), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = build(readJwks());
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
