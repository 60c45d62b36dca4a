### Stackgates Seiten auf Deutsch. Was hier fehlt, erscheint auf Englisch (locales/en).
### Die Kommentare zu Bruchstücken eines Satzes stehen in der englischen Datei.

## Die Leiste oben auf jeder Seite und ihr Fuß

nav-label = Verwaltung
nav-people = Personen
nav-groups = Gruppen
nav-apps = Apps
nav-audit-log = Protokoll
nav-settings = Einstellungen
nav-my-apps = Meine Apps

footer-secured-by = Geschützt durch Stackgate

message-start-page = Zur Startseite

## Wörter, die mehrere Seiten teilen

common-password = Passwort
common-password-hint = Eine lange Passphrase aus zusammenhanglosen Wörtern ist stark und leicht zu tippen.
common-password-again = Passwort wiederholen
common-continue = Weiter
common-signed-in-as = Angemeldet als
common-name = Name
common-email = E-Mail
common-remove = Entfernen
common-password-to-confirm = Ihr Passwort, zur Bestätigung
common-add = Hinzufügen
common-back = Zurück
common-sign-out = Abmelden
common-sign-out-everywhere = Überall abmelden
common-optional = (optional)
common-username = Benutzername
common-cancel = Abbrechen
common-passwords-differ = Die beiden Passwörter stimmen nicht überein.
common-weak-password = Das Passwort { $reason }.
common-saved = Gespeichert.

sessions-device = Gerät
sessions-signed-in = Angemeldet
sessions-last-active = Zuletzt aktiv
sessions-address = Adresse
sessions-unknown-device = Unbekanntes Gerät
sessions-a-browser = Ein Browser
sessions-browser-on = { $browser } auf { $system }

credential-added = hinzugefügt { $when }
credential-last-used = zuletzt benutzt { $when }
credential-not-used = noch nicht benutzt
credential-passkey = Passkey
credential-security-key = Sicherheitsschlüssel

## Fehlerseiten

error-bad-request-title = Das hat nicht geklappt
error-forbidden-title = Nicht erlaubt
error-not-found-title = Seite nicht gefunden
error-not-found = Unter dieser Adresse gibt es nichts. Prüfen Sie den Link oder gehen Sie zurück zur Startseite.
error-gone-title = Dieser Link gilt nicht mehr
error-unavailable-title = Vorübergehend nicht erreichbar
error-unavailable = Stackgate erreicht seine Datenbank gerade nicht. Bitte versuchen Sie es in einer Minute noch einmal.
error-internal-title = Etwas ist schiefgegangen
error-internal = Das ist ein Fehler auf unserer Seite; er wurde protokolliert. Bitte versuchen Sie es noch einmal.
error-forged-form = Dieses Formular ist abgelaufen oder wurde von einer anderen Website gesendet. Gehen Sie zurück, laden Sie die Seite neu und versuchen Sie es noch einmal.

## Anmelden: Benutzername, Passwort und zweiter Schritt

login-title = Anmelden
login-stronger-keys = Die App, die Sie öffnen, verlangt eine stärkere Anmeldung: einen Passkey oder Sicherheitsschlüssel.
login-stronger-second-factor = Die App, die Sie öffnen, verlangt eine stärkere Anmeldung: einen zweiten Faktor.
login-or-without-typing = Oder, ohne etwas zu tippen:
login-passkey = Mit einem Passkey anmelden
login-signing-in-as = Anmeldung als
login-not-you = Nicht Sie?
login-or-password = Oder mit Ihrem Passwort:
login-wrong = Falscher Benutzername oder falsches Passwort.
login-enter-username = Geben Sie Ihren Benutzernamen ein.
login-throttled =
    { $seconds ->
        [one] Zu viele Fehlversuche. Warten Sie { $seconds } Sekunde und versuchen Sie es dann noch einmal.
       *[other] Zu viele Fehlversuche. Warten Sie { $seconds } Sekunden und versuchen Sie es dann noch einmal.
    }
login-throttled-minutes = Zu viele Fehlversuche. Warten Sie { $minutes } Minuten und versuchen Sie es dann noch einmal.

second-factor-title = Bestätigen Sie, dass Sie es sind
second-factor-step-up = Die App, die Sie öffnen, verlangt eine stärkere Anmeldung. In Ihren anderen Apps bleiben Sie angemeldet.
second-factor-keys-only = Diese Anmeldung braucht Ihren Passkey oder Sicherheitsschlüssel.
second-factor-code = Code aus Ihrer Authenticator-App oder ein Wiederherstellungscode
second-factor-recovery-code = Ein Wiederherstellungscode
second-factor-lost-phone = Telefon verloren? Geben Sie einen der Wiederherstellungscodes ein, die Sie bei der Einrichtung gespeichert haben. Jeder gilt einmal.
second-factor-or-key = Oder nehmen Sie Ihren Sicherheitsschlüssel oder Passkey:
second-factor-use-key = Meinen Sicherheitsschlüssel verwenden
second-factor-start-again = Von vorn beginnen
second-factor-too-many = Zu viele falsche Codes. Melden Sie sich noch einmal von vorn an.
second-factor-codes-not-enough = Diese Anmeldung braucht Ihren Passkey oder Sicherheitsschlüssel: Codes reichen hier nicht.
second-factor-wrong-code = Dieser Code hat nicht funktioniert. Codes aus einer Authenticator-App gelten einmal und wechseln alle 30 Sekunden.

## Die Startseite

home-title = Angemeldet
home-hello = Hallo, { $name }
home-signed-in-as = Sie sind angemeldet als
home-and-admin = und sind
home-admin = Admin
home-apps = Ihre Apps
home-app-admin = (Admin)
home-no-apps = Ihnen ist noch keine App freigegeben. Ihr Admin entscheidet, welche Gruppen welche Apps erreichen.

## Einladung oder Link zum Zurücksetzen des Passworts

account-link-invite-title = Willkommen
account-link-reset-title = Neues Passwort
account-link-invite-heading = Willkommen, { $name }
account-link-invite-lead-start = Wählen Sie ein Passwort für
account-link-invite-lead-end = . Danach richten Sie einen Passkey oder eine Authenticator-App ein, damit ein Passwort allein nie jemanden in Ihr Konto lässt.
account-link-reset-heading = Wählen Sie ein neues Passwort
account-link-reset-lead-start = Für
account-link-reset-lead-end = . Danach werden Sie überall abgemeldet und melden sich mit Ihrem neuen Passwort und Ihrem zweiten Faktor wieder an.
account-link-reset-submit = Neues Passwort festlegen
account-link-spent = Dieser Link ist ungültig, abgelaufen oder schon benutzt. Bitten Sie Ihren Admin um einen neuen.

## Anmeldemethoden

account-security-title = Anmeldemethoden
# Englisch sagt „codes“ für jede Zahl; hier wird nach $count gewählt.
account-security-codes-left =
    { $count ->
        [one] { $count } unbenutzter Wiederherstellungscode übrig.
       *[other] { $count } unbenutzte Wiederherstellungscodes übrig.
    }
account-security-codes-none = Noch keine Wiederherstellungscodes.
account-security-wrong-password = Falsches Passwort: Es wurde nichts geändert.

## Wo Sie angemeldet sind

account-sessions-title = Wo Sie angemeldet sind
account-sessions-this-browser = dieser Browser
account-sessions-end = Beenden

## Apps, die Personen anmelden

confirm-sign-out-title = Abmelden?
confirm-sign-out-heading = Überall abmelden?
confirm-sign-out-stay = Angemeldet bleiben

signed-out-title = Abgemeldet
signed-out-heading = Sie sind abgemeldet
signed-out-lead = Sie wurden von Stackgate und von jeder App abgemeldet, die Sie damit benutzt haben.
signed-out-sign-in-again = Wieder anmelden

## Die Verwaltung

admin-only = Nur Admins verwalten Personen, Gruppen und Apps. Wenden Sie sich an Ihre Admins.

## Seiten, zu denen Apps führen

authorize-policy-not-met = Ihre Organisation verlangt für Apps eine stärkere Anmeldung. Fügen Sie auf Ihrer Seite „Anmeldemethoden“ (/account/security) einen zweiten Faktor hinzu und öffnen Sie die App dann noch einmal.
authorize-app-closed = Sie sind als { $user } angemeldet, aber { $app } steht Ihnen nicht offen. Bitten Sie Ihre Verwaltung, Sie einer der Gruppen hinzuzufügen, die sie nutzen dürfen.
webauthn-js-cancelled = Abgebrochen, oder es wurde kein passender Passkey oder Schlüssel gefunden.
webauthn-js-already-registered = Dieser Authenticator ist schon registriert.
webauthn-js-failed = Das hat nicht geklappt. Versuchen Sie es noch einmal.

## Warum die Passwortregeln ein Passwort ablehnen: das Ende von „Das Passwort …“

password-too-short = muss mindestens { $min } Zeichen lang sein (dieses hat { $found }); ein paar Wörter ohne Zusammenhang ergeben ein starkes
password-too-long = darf höchstens { $max } Bytes lang sein
password-same-as-username = darf nicht der Benutzername sein
