### Stackgate's pages in English: the source every other locale translates, and falls back to.
###
### Ids are kebab-case and start with the page they belong to (`admin-users-…`), or with
### `nav-`, `common-`, `error-`, … when several pages share them. A message is text: the page
### escapes it. Where a sentence holds markup (a name in bold, a link, a code) it is split
### around it, and the comments say so.

## The bar at the top of every page, and its footer

nav-label = Admin
nav-people = People
nav-groups = Groups
nav-apps = Apps
nav-audit-log = Audit log
nav-settings = Settings
nav-my-apps = My apps

footer-secured-by = Secured by Stackgate

message-start-page = Go to the start page

## Words several pages share

common-password = Password
common-password-hint = A long passphrase of unrelated words is both strong and easy to type.
common-password-again = Password again
common-continue = Continue
# Followed by the username in bold.
common-signed-in-as = Signed in as
common-name = Name
common-email = Email
common-remove = Remove
common-password-to-confirm = Your password, to confirm it is you
common-add = Add
common-back = Back
common-sign-out = Sign out
common-sign-out-everywhere = Sign out everywhere
common-app = App
common-description = Description
common-save-settings = Save settings
common-sign-in = Sign-in
common-optional = (optional)
common-saved-in-force = Saved and in force.
common-username = Username
common-cancel = Cancel
common-passwords-differ = The two passwords are not the same.
# $reason comes from the password policy (English for now).
common-weak-password = Password { $reason }.
common-saved = Saved.

people-disabled = disabled
people-active = active

apps-user-groups = Groups that use it
apps-admin-groups = Groups that administer it
# A link's text, inside a sentence.
apps-access-policy = access policy

sessions-device = Device
sessions-signed-in = Signed in
sessions-last-active = Last active
sessions-address = Address
sessions-unknown-device = Unknown device
sessions-a-browser = A browser
# $browser and $system are names such as Firefox and Linux.
sessions-browser-on = { $browser } on { $system }

# $when is a date and time, UTC.
credential-added = added { $when }
# $when is a date and time, UTC.
credential-last-used = last used { $when }
credential-not-used = not used yet
credential-passkey = Passkey
credential-security-key = Security key

## Error pages

error-bad-request-title = That did not work
error-forbidden-title = Not allowed
error-not-found-title = Page not found
error-not-found = There is nothing at this address. Check the link, or go back to the start page.
error-gone-title = This link no longer works
error-unavailable-title = Temporarily unavailable
error-unavailable = Stackgate cannot reach its database right now. Please try again in a minute.
error-internal-title = Something went wrong
error-internal = This is a fault on our side and it has been logged. Please try again.
# A form whose CSRF token or origin does not check out.
error-forged-form = This form expired or was sent from another site. Go back, reload the page and try again.

## Sign-in: the username, the password and the second step

login-title = Sign in
login-stronger-keys = The app you are opening asks for a stronger sign-in: a passkey or security key.
login-stronger-second-factor = The app you are opening asks for a stronger sign-in: a second factor.
login-or-without-typing = Or, without typing anything:
login-passkey = Sign in with a passkey
# Followed by the username in bold, and a link: login-not-you.
login-signing-in-as = Signing in as
login-not-you = Not you?
login-or-password = Or with your password:
login-wrong = Wrong username or password.
# While an account or address must wait before its next attempt.
login-throttled =
    { $seconds ->
        [one] Too many failed attempts. Wait { $seconds } second, then try again.
       *[other] Too many failed attempts. Wait { $seconds } seconds, then try again.
    }
# $minutes is always 2 or more.
login-throttled-minutes = Too many failed attempts. Wait { $minutes } minutes, then try again.

second-factor-title = Confirm it is you
second-factor-step-up = The app you are opening asks for a stronger sign-in. You stay signed in to your other apps.
second-factor-keys-only = This sign-in needs your passkey or security key.
second-factor-code = Code from your authenticator app, or a recovery code
second-factor-recovery-code = A recovery code
second-factor-lost-phone = Lost your phone? Enter one of the recovery codes you saved when you set it up. Each works once.
second-factor-or-key = Or use your security key or passkey:
second-factor-use-key = Use my security key
second-factor-start-again = Start again
second-factor-too-many = Too many wrong codes. Sign in again from the start.
second-factor-codes-not-enough = This sign-in needs your passkey or security key: codes are not enough here.
second-factor-wrong-code = That code did not work. Codes from an authenticator app work once and change every 30 seconds.
login-enter-username = Enter your username.

## Passkeys and security keys (messages the page's script shows)

webauthn-needs-host-name = Security keys and passkeys need Stackgate to be reached by a host name, not an IP address.
webauthn-expired = This attempt expired. Try again.
webauthn-cloned = This security key or passkey looks copied, so it was refused. Your admin has been told.
webauthn-sign-in-first = Sign in first.
webauthn-choose-kind = Choose a passkey or a security key.
webauthn-name-length = Give it a name of 1 to 64 characters, such as "work laptop" or "blue key".
webauthn-other-sign-in = This attempt belongs to another sign-in.
webauthn-answer-refused = The authenticator's answer did not check out. Try again.
webauthn-unknown-passkey = This passkey is not registered here.
webauthn-passkey-refused = The passkey's answer did not check out. Try again.
webauthn-start-again = Sign in again from the start.
webauthn-no-keys = You have no security key or passkey here.
webauthn-not-your-key = This key is not registered to your account.
webauthn-key-refused = The key's answer did not check out. Try again.
webauthn-too-many-starts =
    { $seconds ->
        [one] Too many passkey sign-ins from your network. Wait { $seconds } second, then try again.
       *[other] Too many passkey sign-ins from your network. Wait { $seconds } seconds, then try again.
    }

## First-run setup

setup-title = Set up Stackgate
setup-heading = Create the first admin
setup-lead = This link works once. The account you create here manages everyone else's.
setup-your-name = Your name
setup-submit = Create admin account
setup-link-spent = This setup link is invalid, expired or already used. Restart Stackgate to print a new one, or create an admin on the server with `stackgate user add NAME --admin`.

## The start page

home-title = Signed in
home-hello = Hello, { $name }
# Followed by the username in bold; for admins then home-and-admin and home-admin in bold; then a full stop.
home-signed-in-as = You are signed in as
# Between the username and home-admin, both in bold.
home-and-admin = and you are an
home-admin = admin
home-apps = Your apps
home-app-admin = (admin)
home-no-apps = No app is open to you yet. Your admin decides which groups reach which apps.
# Followed by links to the admin pages.
home-admin-links = Admin:
home-admin-people = people
home-admin-groups = groups
home-admin-apps = apps
home-admin-audit = audit log
# Followed by the API's address in parentheses, then home-api-end.
home-api-start = Everything there is also in the admin API
# Followed by the command's name, stackgate, then home-api-command.
home-api-end = and the
home-api-command = command.
# After a link to the Sign-in methods page.
home-security-hint = : passkeys, security keys, authenticator app, recovery codes and password.
# After a link to the page that lists where one is signed in.
home-sessions-hint = : your devices, and a way to sign one out.
home-everywhere-hint = Ends your sessions on every device and in every app, for example after losing a laptop.

## An invitation or password-reset link

account-link-invite-title = Welcome
account-link-reset-title = New password
account-link-invite-heading = Welcome, { $name }
# Followed by the username in bold, then account-link-invite-lead-end.
account-link-invite-lead-start = Choose a password for
# After the username in bold.
account-link-invite-lead-end = . Next you set up a passkey or an authenticator app, so that a password alone never gets anyone into your account.
account-link-reset-heading = Choose a new password
# Followed by the username in bold, then account-link-reset-lead-end.
account-link-reset-lead-start = For
# After the username in bold.
account-link-reset-lead-end = . You are then signed out everywhere, and sign in again with your new password and your second factor.
account-link-reset-submit = Set new password
account-link-spent = This link is invalid, expired or already used. Ask your admin for a new one.

## Sign-in methods

account-security-title = Sign-in methods
# $what is account-security-needs-key or account-security-needs-second-factor.
account-security-must-add = Your organisation requires { $what } to sign in.
account-security-must-add-next = Add one below; you can use your apps as soon as it is set up.
account-security-details = Your details
account-security-profile-password = Your password
account-security-profile-password-hint = (only to change your email)
account-security-save-details = Save my details
account-security-keys = Passkeys and security keys
account-security-new-name = New name
account-security-rename = Rename
account-security-password-to-remove-key = Your password, to remove it
account-security-no-keys = None yet. A passkey signs you in with your fingerprint, face or device PIN, and cannot be phished.
account-security-add-one = Add one
account-security-kind-passkey = Passkey (signs in on its own)
account-security-kind-security-key = Security key (after your password)
account-security-key-name-placeholder = work laptop
account-security-totp = Authenticator app
account-security-totp-on = Set up. Signing in asks for a code from the app after your password.
account-security-password-to-remove-totp = Your password, to remove the app
account-security-totp-remove = Remove the authenticator app
account-security-totp-off = Not set up. With an app such as Aegis, FreeOTP or Google Authenticator, a stolen password alone no longer gets anyone in.
account-security-totp-set-up = Set up an authenticator app
account-security-codes = Recovery codes
# English says “codes” for any number; other languages may select on $count.
account-security-codes-left = { $count } unused recovery codes left.
account-security-codes-none = No recovery codes yet.
account-security-codes-hint = Each gets you in once if you lose your other methods.
account-security-codes-replace = Replace my recovery codes
account-security-codes-create = Create recovery codes
account-security-current-password = Current password
account-security-new-password = New password
account-security-new-password-again = New password again
account-security-change-password = Change password
account-security-wrong-password = Wrong password: nothing was changed.
account-security-needs-key = a passkey or a security key
account-security-needs-second-factor = a second factor: a passkey, a security key or an authenticator app
account-security-password-changed = Your password was changed. Your other devices were signed out.
account-security-details-saved = Your details were saved.
account-security-new-passwords-differ = The two new passwords differ: nothing was changed.
# $reason comes from the password policy (English for now).
account-security-weak-password = The new password { $reason }. Nothing was changed.
# $reason says what was refused (English for now).
account-security-refused = { $reason }: nothing was changed.

totp-enrol-scan = In your authenticator app, add an account and scan this code.
totp-enrol-qr-label = QR code for your authenticator app
totp-enrol-type-key = Cannot scan it? Type this key into the app instead (time-based):
totp-enrol-enter-code = Enter the 6-digit code the app now shows.
totp-enrol-code = Code from the app
totp-enrol-turn-on = Turn on
totp-enrol-code-mismatch = That code did not match. Check the app's clock, then enter the code it shows now.
totp-enrol-restarted = Set-up was restarted in another window. Scan the newest QR code and try again.

recovery-codes-title = Your recovery codes
recovery-codes-lead = Save them now, somewhere other than your phone: a password manager or a printout.
recovery-codes-lead-once = They are shown only this once. Each code works once; any older codes no longer work.
recovery-codes-saved = I have saved them

## Where you are signed in

account-sessions-title = Where you are signed in
# After common-signed-in-as and the username in bold.
account-sessions-lead-end = . Ending a session signs that device out of Stackgate and of every app it opened.
account-sessions-action = Action
account-sessions-this-browser = this browser
account-sessions-end = End

## Apps that sign people in

consent-title = Allow { $app }?
# After common-signed-in-as and the username; followed by the list of what the app asks for.
consent-asks = { $app } asks to:
consent-allow = Allow
consent-deny = Deny
consent-withdraw = You can withdraw this later in your account settings.

confirm-sign-out-title = Sign out?
confirm-sign-out-heading = Sign out everywhere?
# Followed by the username in bold, then confirm-sign-out-lead-end.
confirm-sign-out-lead-start = An app asked to sign you out. You are signed in as
# After the username in bold.
confirm-sign-out-lead-end = ; signing out ends your session in every app.
confirm-sign-out-stay = Stay signed in

signed-out-title = Signed out
signed-out-heading = You are signed out
signed-out-lead = You have been signed out of Stackgate and of every app you used with it.
signed-out-frame = Signing out of an app
signed-out-sign-in-again = Sign in again

proxy-sign-in-not-ours = This link does not lead to an app published through Stackgate. Open the app's address directly.
proxy-sign-in-incomplete = This sign-in link is incomplete. Open the app's address again.
proxy-sign-in-stronger = Your organisation requires a stronger sign-in for apps. Add a second factor on your Sign-in methods page (/account/security), then open the app again.

## The admin console

admin-only = Only admins manage users, groups and apps. Ask one of your admins.

# Under a form whose confirmation box was not ticked.
admin-confirm-delete = tick the box to confirm that you want to delete { $name }
# Under a form whose confirmation box was not ticked.
admin-confirm-reset-mfa = tick the box to confirm that you want to remove every second factor of this account

admin-users-find = Find by username, name or email
admin-users-search = Search
admin-users-state = State
admin-users-next-page = Next page
admin-users-nobody-matches = Nobody matches “{ $query }”.
admin-users-no-one = No one yet.
admin-users-add = Add a person
admin-users-username-hint = Lower-case letters, digits, dots, dashes and underscores.
admin-users-email-hint = (the invitation goes here)
admin-users-invite-email = Email an invitation link
admin-users-invite-link = Create an invitation link to pass on
admin-users-add-submit = Add person

# Followed by the email address in bold, then admin-user-link-works-until.
admin-user-invitation-emailed = Invitation emailed to
# Followed by the email address in bold, then admin-user-link-works-until.
admin-user-reset-emailed = Password-reset link emailed to
# After the email address in bold. $expires is a date and time, UTC.
admin-user-link-works-until = . It works once, until { $expires }.
# $reason says why the mail could not be sent (English for now).
admin-user-not-emailed = Not emailed: { $reason }.
admin-user-pass-invitation = Pass this invitation on to { $name } yourself, over a channel you trust. It works once, until { $expires }, and is not shown again.
admin-user-pass-reset = Pass this password-reset link on to { $name } yourself, over a channel you trust. It works once, until { $expires }, and is not shown again.
admin-user-details = Details
admin-user-save-details = Save details
admin-user-remove-from-label = Remove from { $name }
admin-user-no-group = In no group: reaches no app.
admin-user-add-to-group = Add to a group
admin-user-choose-group = Choose a group
admin-user-has-password = Has a password.
admin-user-no-password = No password yet
admin-user-totp = authenticator app
# English says “codes” for any number; other languages may select on $count.
admin-user-codes-left = { $count } recovery codes left
admin-user-no-factors = No passkey, security key or authenticator app.
admin-user-send-reset = Send a password-reset link
admin-user-send-invitation = Send an invitation link
admin-user-confirm-reset-mfa = Remove every passkey, security key, authenticator app and recovery code of this account
admin-user-reset-mfa = Reset second factors
admin-user-sessions = Sessions
admin-user-with = With
admin-user-no-sessions = Not signed in anywhere.
admin-user-enable = Enable account
admin-user-disable = Disable account
admin-user-confirm-delete = Delete { $username } for good
admin-user-delete = Delete account
admin-user-created = Account created.
admin-user-disabled = Account disabled, and signed out everywhere.
admin-user-enabled = Account enabled.
admin-user-signed-out = Signed out of every session and every app.
admin-user-mfa-reset = Second factors removed, and signed out everywhere. Their next sign-in leads them through setting new ones up where their groups require it.
admin-user-group-added = Added to the group.
admin-user-group-removed = Removed from the group.
admin-user-passkey = passkey
admin-user-security-key = security key

admin-groups-lead = Groups decide who reaches which app, and how strongly their members must sign in.
admin-groups-group = Group
admin-groups-members = Members
admin-groups-mfa-optional = as the organisation requires
admin-groups-mfa-required = second factor
admin-groups-mfa-phishing-resistant = passkey or security key
admin-groups-add = Add a group
# Followed by an example name as code, and a full stop.
admin-groups-name-hint = Lower-case letters, digits, dots, dashes and underscores, such as
admin-groups-add-submit = Add group

admin-group-built-in = built in
# A heading; $count is how many members the group has.
admin-group-members = Members ({ $count })
admin-group-remove-member-label = Remove { $username }
admin-group-first-500 = Showing the first 500.
admin-group-no-members = No members yet.
admin-group-add-member = Add a member by username
admin-group-mfa = How members must sign in
admin-group-mfa-optional = As the organisation requires
admin-group-mfa-required = With a second factor (authenticator app, passkey or security key)
admin-group-mfa-phishing-resistant = With a passkey or security key only (cannot be phished)
admin-group-mfa-hint = Members without what it asks for are led through setting it up at their next sign-in.
admin-group-confirm-delete = Delete { $name }: its members lose the apps it gives them
admin-group-delete = Delete group
admin-group-created = Group created.
admin-group-member-added = Member added.
admin-group-member-removed = Member removed.

admin-apps-lead = Install apps from the catalog; each gets its sign-in, its address and its access rule.
# Followed by a link, apps-access-policy, and a semicolon.
admin-apps-lead-finer-rules = Finer rules go in the
# Followed by a link, admin-apps-lead-sign-in-here, and a full stop.
admin-apps-lead-elsewhere = apps from elsewhere get their
admin-apps-lead-sign-in-here = sign-in here
admin-apps-installed = Installed
admin-apps-status = Status
admin-apps-who = Who
admin-apps-confirm-remove = Remove { $name } and its data
admin-apps-uninstall-label = Uninstall { $name }
admin-apps-uninstall = Uninstall
admin-apps-admins-only = admins only
admin-apps-admins = admins: { $groups }
admin-apps-none = No app is installed yet.
admin-apps-catalog = Catalog
admin-apps-badge-installed = installed
admin-apps-manage = Manage { $name }
# Followed by admin-apps-signs-in-oidc or admin-apps-signs-in-proxy.
admin-apps-runs-process = Runs as a process on this machine;
# Followed by admin-apps-signs-in-oidc or admin-apps-signs-in-proxy.
admin-apps-runs-kubernetes = Runs on Kubernetes;
admin-apps-signs-in-oidc = signs people in through OpenID Connect.
admin-apps-signs-in-proxy = signs people in through the edge proxy.
admin-apps-install = Install { $name }
admin-apps-confirm-uninstall = Tick the box to confirm that you want to uninstall { $app }: its sign-in, address, access rule and data all go.

# Followed by the app's address, as a link.
admin-app-installed = Installed:
admin-app-installing = Installing…
admin-app-install-failed = The install failed, and everything it had done was undone.
admin-app-saved = Saved. People who lost access, or whose role changed, were signed out of this app.
admin-app-access = Who reaches it
admin-app-users = Users: { $groups }
admin-app-users-admins-only = Users: admins only
admin-app-admins = ; admins: { $groups }
# Followed by user:NAME as code, then admin-app-groups-hint-end.
admin-app-groups-hint-start = Group names separated by spaces;
admin-app-groups-hint-end = for one person. Admins always reach every app.
admin-app-save-access = Save who reaches it
# Followed by a link, apps-access-policy, and a full stop.
admin-app-finer-rules-start = Finer rules (a path, a method, one person) go in the
admin-app-all-apps = All apps

admin-clients-title = Sign-in for other apps
admin-clients-lead = Apps that are not in the catalog sign people in here with OpenID Connect.
# Followed by the issuer's address as code, then admin-clients-lead-discovery.
admin-clients-lead-issuer = Give the app the issuer
# After the issuer's address; followed by the discovery document's address as code, and a full stop.
admin-clients-lead-discovery = , its client id and its secret; it finds everything else at
# Followed by the client id.
admin-clients-client-id = Client id:
admin-clients-client-secret = Client secret, shown this once: copy it into the app now.
admin-clients-public-client = A public client: no secret; the app must use PKCE.
admin-clients-returns-to = Returns to
admin-clients-actions = Actions
admin-clients-badge-public = public
# Followed by a link, admin-clients-manage-there.
admin-clients-installed-app = installed app:
admin-clients-manage-there = manage it there
admin-clients-new-secret = New secret
admin-clients-confirm-remove = Remove { $name }
admin-clients-add = Add an app
admin-clients-name = Name people see
admin-clients-redirect-uris = Where it returns after sign-in
admin-clients-redirect-uris-hint = (one address per line, exactly as the app sends it)
admin-clients-post-logout-uris = Where it returns after sign-out
admin-clients-post-logout-uris-hint = (optional, one per line)
admin-clients-backchannel = Back-channel logout address
admin-clients-backchannel-hint = (optional: ends the app's session when the person signs out anywhere)
admin-clients-kind = Kind
admin-clients-kind-confidential = A server-side app (gets a secret)
admin-clients-kind-public = A single-page or mobile app (no secret, PKCE)
admin-clients-first-party = Your organisation's own app: skip the consent page
admin-clients-add-submit = Add app
admin-clients-belongs-to-app = { $client } belongs to an installed app: change it through the app's page, or uninstall the app
admin-clients-confirm-remove-needed = Tick the box to confirm that you want to remove { $client }.

admin-policy-title = Access policy
# Followed by an opening parenthesis, the setting proxy_listen as code, then admin-policy-off-end.
admin-policy-off-start = The edge proxy is off
admin-policy-off-end = is not set), so there is no access policy to edit.
admin-policy-off-oidc = Apps that sign people in with OpenID Connect still follow the groups given on their page.
# Followed by a link to Cedar's site, and a full stop.
admin-policy-lead-start = Who may reach which app behind the edge, written in
# One sentence over two lines of the page, ending in admin-policy-lead-rules-end.
admin-policy-lead-rules = Stackgate writes the rules for each app from the groups you give it; add your own rules here, for example to
admin-policy-lead-rules-end = forbid a path or allow one person. A rule that does not check against the schema is refused, and the rules in force stay as they were.
admin-policy-not-saved = Not saved: the rules in force are unchanged.
admin-policy-your-rules = Your rules
admin-policy-save = Check and save
admin-policy-generated = Rules Stackgate writes for the apps
admin-policy-generated-none = (no app is behind the edge yet)
admin-policy-defaults = The defaults
admin-policy-schema = The schema

admin-settings-lead = These override the config file's values, on every replica within seconds.
admin-settings-organisation = Your organisation
admin-settings-colour = Colour
admin-settings-logo = Logo
admin-settings-logo-hint = (PNG, JPEG, WebP or SVG, at most 512 KiB)
admin-settings-current-logo = The current logo
admin-settings-remove-logo = Remove the logo
admin-settings-signing-in = Signing in
admin-settings-mfa = Every sign-in must use
admin-settings-mfa-optional = A password, or a passkey (groups may ask for more)
admin-settings-mfa-required = A second factor: authenticator app, passkey or security key
admin-settings-mfa-phishing-resistant = A passkey or security key (cannot be phished)
admin-settings-mfa-hint = People without what it asks for are led through setting it up at their next sign-in.
admin-settings-idle = Unused sessions end after (minutes)
admin-settings-lifetime = Sessions end after (hours) at most
# Followed by the mail server as code, and a full stop.
admin-settings-mail-via = Invitations and password-reset links are sent through
# Followed by an opening parenthesis, the setting smtp_url as code, then admin-settings-no-mail-end.
admin-settings-no-mail-start = No mail server is set
admin-settings-no-mail-end = in the config file): invitation and reset links are shown to you to pass on.
# $field is admin-settings-idle-field or admin-settings-lifetime-field.
admin-settings-whole-number = { $field }: give a whole number
admin-settings-idle-field = Unused sessions end after
admin-settings-lifetime-field = Sessions end after
admin-settings-unreadable = The form could not be read: { $reason }

admin-audit-lead = Every change and every sign-in, newest first.
admin-audit-actor = Who did it
admin-audit-actor-placeholder = username
admin-audit-action = Action
admin-audit-action-placeholder = user. or login.failure
admin-audit-target-filter = To whom or what
admin-audit-since = From
admin-audit-until = To
admin-audit-filter = Filter
admin-audit-export = Export what these filters select:
admin-audit-when = When
admin-audit-who = Who
admin-audit-target = Target
admin-audit-detail = Detail
admin-audit-older = Older entries
admin-audit-nothing = Nothing matches.
# $field is admin-audit-since or admin-audit-until.
admin-audit-bad-date = { $field }: give a date as YYYY-MM-DD

## Pages an app sends people to (/authorize, consent, /end_session)

# $reason is the protocol error, in English.
authorize-malformed = This sign-in link is malformed: { $reason }.
authorize-no-client = This sign-in link does not say which app it is for (client_id is missing).
authorize-unknown-client = No app called "{ $client }" is registered here. Ask the app's admin to check its settings.
authorize-no-redirect-uri = This sign-in link does not say where to return (redirect_uri is missing).
authorize-unregistered-redirect-uri = This sign-in link would send you to an address that { $app } has not registered. You have not been signed in anywhere.
authorize-policy-not-met = Your organisation requires a stronger sign-in for apps. Add a second factor on your Sign-in methods page (/account/security), then open the app again.
authorize-app-closed = You are signed in as { $user }, but { $app } is not open to you. Ask your admin to add you to one of the groups that may use it.
consent-forged-form = This form expired or was sent from another site. Go back to the app and try again.
consent-malformed = The consent form was malformed.
consent-unknown-app = Unknown app.
consent-unregistered-redirect-uri = This app's return address is not registered.
end-session-malformed = This sign-out link is malformed.
end-session-unverified-hint = The app sent a sign-out request Stackgate cannot verify.
end-session-two-apps = The sign-out request names two different apps.
end-session-unregistered-return = This sign-out request asks to return to an address the app has not registered, so Stackgate will not send you there. You have not been signed out.
end-session-forged-form = This form expired or was sent from another site. Nothing was changed.

## Messages the page's script (assets/webauthn.js) shows, handed to it in data attributes

webauthn-js-cancelled = Cancelled, or no matching passkey or key was found.
webauthn-js-already-registered = This authenticator is already registered.
webauthn-js-failed = That did not work. Try again.

## Why the password policy refused a password: the end of "Password …"

password-too-short = must be at least { $min } characters long (this one has { $found }); a few unrelated words make a strong one
password-too-long = must be at most { $max } bytes long
password-same-as-username = must not be the same as the username
