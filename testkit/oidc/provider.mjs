// An OpenID Connect provider for the tests: the npm package oidc-provider on 127.0.0.1, with one
// confidential client (authorization code with PKCE, refresh tokens), people whose claims carry
// a user name, e-mail and groups, and its development login form (any password: the person is
// the name typed). Consent is granted at once. Two hooks for the tests: POST /test/remove/<name>
// takes a person away (their refresh tokens then fail), POST /test/groups/<name> with a JSON list
// sets their groups. Started by testkit::oidc; prints "oidc provider listening" on stderr.

import http from 'node:http';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(`${process.env.NODE_PATH}/oidc-provider/lib/index.js`));

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const people = new Map(Object.entries({
  alice: { preferred_username: 'alice', email: 'alice@example.org', name: 'Alice Liddell', groups: ['developers'] },
  bob: { preferred_username: 'bob', email: 'bob@example.org', name: 'Bob Builder', groups: [] },
  olga: { preferred_username: 'olga', email: 'olga@example.org', name: 'Olga Admin', groups: ['registry-admins'] },
  jose: { preferred_username: 'jose', email: 'jose@example.org', name: 'José Núñez', groups: ['developers'] },
}));

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: process.env.REDIRECT_URIS.split(' '),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(ctx, id) {
    const person = people.get(id);
    if (!person) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...people.get(id) }; } };
  },
  claims: { openid: ['sub'], email: ['email'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  ttl: { AccessToken: Number(process.env.ACCESS_TTL || 60), IdToken: 60, RefreshToken: 86400, Interaction: 600, Session: 600, Grant: 86400 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups offline_access');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

const handle = provider.callback();
const server = http.createServer(async (req, res) => {
  const removed = req.method === 'POST' && req.url.match(/^\/test\/remove\/([^/]+)$/);
  const regrouped = req.method === 'POST' && req.url.match(/^\/test\/groups\/([^/]+)$/);
  if (removed) {
    people.delete(removed[1]);
    res.writeHead(204).end();
  } else if (regrouped && people.has(regrouped[1])) {
    people.get(regrouped[1]).groups = JSON.parse(await body(req));
    res.writeHead(204).end();
  } else {
    handle(req, res);
  }
});
server.listen(port, '127.0.0.1', () => console.error('oidc provider listening'));
