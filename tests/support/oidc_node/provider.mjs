// An OpenID Connect provider (panva/oidc-provider) for Stead's single sign-on browser tests,
// strict where it matters: PKCE required for every client, S256 only, client_secret_basic.
//
// Environment: PORT (listens on 127.0.0.1:PORT; the issuer is http://127.0.0.1:PORT),
// CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ACCOUNTS (JSON: login name -> claims, e.g.
// {"ada": {"email": "ada@example.com", "email_verified": true, "groups": ["sales"]}}).
// Sign in on its development login page with the login name and any password.
// Prints "ready" on stdout once it listens.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub', 'groups'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['stead-tests-only-cookie-key'] },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});
// Development logins show a warning on stderr: expected here.
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
