// Stackgate's WebAuthn glue: passkey sign-in (button and autofill), a security key as the
// second step, and registering passkeys and security keys. No dependencies; binary fields go
// over the wire as unpadded base64url, as webauthn-rs expects.
"use strict";
(function () {
  // The page hands over its messages in the reader's language (English if it does not).
  const messages = (document.currentScript && document.currentScript.dataset) || {};
  const b64 = {
    toBytes(text) {
      const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
      return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
    },
    fromBytes(buffer) {
      let text = "";
      for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
      return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  function showError(message) {
    const box = document.getElementById("webauthn-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
      box.focus && box.focus();
    }
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (_) {
      data = { error: "Stackgate answered " + response.status + "." };
    }
    if (!response.ok) throw new Error(data.error || "Stackgate answered " + response.status + ".");
    return data;
  }

  function creationOptions(options) {
    const o = options.publicKey;
    o.challenge = b64.toBytes(o.challenge);
    o.user.id = b64.toBytes(o.user.id);
    (o.excludeCredentials || []).forEach((c) => (c.id = b64.toBytes(c.id)));
    return o;
  }

  function requestOptions(options) {
    const o = options.publicKey;
    o.challenge = b64.toBytes(o.challenge);
    (o.allowCredentials || []).forEach((c) => (c.id = b64.toBytes(c.id)));
    return o;
  }

  function registration(credential) {
    return {
      id: credential.id,
      rawId: b64.fromBytes(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: b64.fromBytes(credential.response.attestationObject),
        clientDataJSON: b64.fromBytes(credential.response.clientDataJSON),
        transports: credential.response.getTransports ? credential.response.getTransports() : undefined,
      },
    };
  }

  function assertion(credential) {
    const r = credential.response;
    return {
      id: credential.id,
      rawId: b64.fromBytes(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: b64.fromBytes(r.authenticatorData),
        clientDataJSON: b64.fromBytes(r.clientDataJSON),
        signature: b64.fromBytes(r.signature),
        userHandle: r.userHandle ? b64.fromBytes(r.userHandle) : null,
      },
    };
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") return messages.cancelled || "Cancelled, or no matching passkey or key was found.";
    if (error && error.name === "InvalidStateError") return messages.alreadyRegistered || "This authenticator is already registered.";
    return (error && error.message) || messages.failed || "That did not work. Try again.";
  }

  // Passkey sign-in: the explicit button, and autofill in the username field where supported.
  const signin = document.getElementById("passkey-signin");
  if (signin && window.PublicKeyCredential) {
    let autofill = null;
    async function passkeySignIn(mediation) {
      const start = await post("/login/passkey/start", { csrf: signin.dataset.csrf });
      const publicKey = requestOptions(start.options);
      const request = { publicKey };
      if (mediation) {
        autofill = new AbortController();
        request.mediation = "conditional";
        request.signal = autofill.signal;
      }
      const credential = await navigator.credentials.get(request);
      const done = await post("/login/passkey/finish", {
        ceremony: start.ceremony,
        credential: assertion(credential),
        return_to: signin.dataset.returnTo,
      });
      window.location.assign(done.redirect);
    }
    signin.addEventListener("click", () => {
      if (autofill) autofill.abort();
      autofill = null;
      passkeySignIn(false).catch((e) => showError(explain(e)));
    });
    // Autofill belongs to the username field, which only the first step has.
    if (signin.dataset.autofill && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (available) passkeySignIn(true).catch(() => {});
      });
    }
  }

  // A security key (or passkey) as the second step.
  const second = document.getElementById("webauthn-second-factor");
  if (second) {
    second.addEventListener("click", async () => {
      try {
        const start = await post("/login/second-factor/webauthn/start", { csrf: second.dataset.csrf });
        const credential = await navigator.credentials.get({ publicKey: requestOptions(start.options) });
        const done = await post("/login/second-factor/webauthn/finish", {
          ceremony: start.ceremony,
          credential: assertion(credential),
        });
        window.location.assign(done.redirect);
      } catch (e) {
        showError(explain(e));
      }
    });
  }

  // Registering a passkey or a security key.
  const register = document.getElementById("webauthn-register");
  if (register) {
    register.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(register);
      try {
        const start = await post("/account/webauthn/register/start", {
          csrf: register.dataset.csrf,
          kind: form.get("kind"),
          name: form.get("name"),
          password: form.get("password"),
        });
        const credential = await navigator.credentials.create({ publicKey: creationOptions(start.options) });
        const done = await post("/account/webauthn/register/finish", {
          ceremony: start.ceremony,
          credential: registration(credential),
        });
        window.location.assign(done.redirect);
      } catch (e) {
        showError(explain(e));
      }
    });
  }
})();
