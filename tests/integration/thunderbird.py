# SPDX-License-Identifier: Apache-2.0
"""Real Thunderbird (Debian's `thunderbird`) opening sealed mail, under Xvfb, driven through
its Marionette remote protocol. No network: the profile's only account is a local folder.

`Thunderbird(workdir, ...)` makes a profile with one identity (the recipient), files messages
as an mbox folder, starts Xvfb and Thunderbird with Marionette on a free loopback port, imports
the recipient's OpenPGP secret key the way the OpenPGP Key Manager does (RNP.sys.mjs's
importSecKeyBlockImpl, which also protects it with Thunderbird's own passphrase: a keyring file
written beside Thunderbird would make it ask to "repair" the profile), and reads what the
message view shows for each message: the body text, the encryption technology ("OpenPGP",
"S/MIME"), whether the encrypted-OK and signed-OK icons show, and the Subject in the header pane and in the message
list.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import harness

START_TIMEOUT = 90
SCRIPT_TIMEOUT = 120

USER_JS = """\
user_pref("mail.shell.checkDefaultClient", false);
user_pref("mailnews.start_page.enabled", false);
user_pref("mail.provider.enabled", false);
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("mail.rights.version", 1);
user_pref("mail.inappnotifications.enabled", false);
user_pref("app.donation.eoy.version.viewed", 999);
user_pref("mail.spotlight.firstRunDone", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("extensions.autoDisableScopes", 15);
user_pref("network.dns.disableIPv6", true);
user_pref("marionette.port", {port});
user_pref("mail.accountmanager.accounts", "account1,account2");
user_pref("mail.accountmanager.defaultaccount", "account1");
user_pref("mail.accountmanager.localfoldersserver", "server2");
user_pref("mail.account.account1.identities", "id1");
user_pref("mail.account.account1.server", "server1");
user_pref("mail.account.account2.server", "server2");
user_pref("mail.identity.id1.fullName", "Recipient");
user_pref("mail.identity.id1.useremail", "{address}");
user_pref("mail.identity.id1.valid", true);
user_pref("mail.identity.id1.openpgp_key_id", "{openpgp_key_id}");
user_pref("mail.server.server1.type", "pop3");
user_pref("mail.server.server1.hostname", "127.0.0.1");
user_pref("mail.server.server1.port", 9);
user_pref("mail.server.server1.userName", "recipient");
user_pref("mail.server.server1.name", "Closed");
user_pref("mail.server.server1.login_at_startup", false);
user_pref("mail.server.server1.check_new_mail", false);
user_pref("mail.server.server1.deferred_to_account", "account2");
user_pref("mail.server.server2.type", "none");
user_pref("mail.server.server2.hostname", "Local Folders");
user_pref("mail.server.server2.userName", "nobody");
user_pref("mail.server.server2.name", "Local Folders");
user_pref("mail.server.server2.directory", "{folders}");
"""

# Run in the main window's chrome context. SHOW_FOLDER (the start of both) displays
# `folderURI` in the 3-pane tab, as a click in the folder pane would.
SHOW_FOLDER = """
const [folderURI, index] = arguments;
const about3Pane = window.gTabmail.currentAbout3Pane;
if (!about3Pane.gFolder || about3Pane.gFolder.URI != folderURI) {
  about3Pane.displayFolder(folderURI);
}
const tree = about3Pane.threadTree;
if (!tree || !tree.view) {
  return {pending: "no thread view yet"};
}
if (tree.view.rowCount <= index) {
  return {pending: "rows " + tree.view.rowCount};
}
"""

# The Subject the message list shows for message `index`, without opening it.
LIST_SUBJECT = SHOW_FOLDER + """
return {subject: tree.view.getMsgHdrAt(index).mime2DecodedSubject};
"""

# Opens message `index` and, once the message view has loaded it, returns what it shows.
READ_MESSAGE = SHOW_FOLDER + """
if (tree.selectedIndex != index) {
  tree.selectedIndex = index;
  return {pending: "selecting"};
}
const view = about3Pane.messageBrowser.contentWindow;
const hdr = tree.view.getMsgHdrAt(index);
if (!view.gMessage || view.gMessage.messageId != hdr.messageId) {
  return {pending: "loading"};
}
const doc = view.getMessagePaneBrowser().contentDocument;
if (!doc || doc.readyState != "complete" || !doc.body) {
  return {pending: "rendering"};
}
const tech = view.document.getElementById("encryptionTechBtn");
const icon = view.document.getElementById("encryptedHdrIcon");
const signed = view.document.getElementById("signedHdrIcon");
const subject = view.document.getElementById("expandedsubjectBox");
return {
  body: doc.body.innerText,
  tech: tech && !tech.hidden ? tech.textContent.trim() : "",
  encrypted_ok: !!(icon && !icon.hidden && icon.src && icon.src.endsWith("message-encrypted-ok.svg")),
  signed_ok: !!(signed && !signed.hidden && signed.src && signed.src.endsWith("message-signed-ok.svg")),
  header_subject: subject ? subject.textContent.trim() : "",
  list_subject: hdr.mime2DecodedSubject,
  attachments: (view.currentAttachments || []).map(a => a.name).join("\\n"),
};
"""


class Marionette:
    """Marionette's protocol: length-prefixed JSON, [0, id, command, params] out and
    [1, id, error, result] back."""

    def __init__(self, port):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=SCRIPT_TIMEOUT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise harness.HarnessError("Marionette does not answer")
                time.sleep(0.2)
        self.buffer = b""
        self.next_id = 0
        self._read()  # the greeting

    def _read(self):
        while b":" not in self.buffer:
            self.buffer += self._recv()
        length, _, rest = self.buffer.partition(b":")
        length = int(length)
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return json.loads(rest[:length])

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise harness.HarnessError("Marionette closed the connection")
        return chunk

    def command(self, name, params=None):
        self.next_id += 1
        data = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            reply = self._read()
            if reply[0] == 1 and reply[1] == self.next_id:
                break
        if reply[2]:
            raise harness.HarnessError(f"Marionette {name}: {reply[2]}")
        return reply[3]

    def close(self):
        self.sock.close()


def mbox(messages):
    """An mbox file of `messages` (bytes, CRLF or LF), as Thunderbird's local folders keep them."""
    out = b""
    for data in messages:
        text = data.replace(b"\r\n", b"\n")
        lines = [b">" + l if l.startswith(b"From ") else l for l in text.split(b"\n")]
        out += b"From - Fri Dec  4 10:00:00 2026\n" + b"\n".join(lines).rstrip(b"\n") + b"\n\n"
    return out


class Thunderbird:
    def __init__(self, workdir, address, openpgp_key_id=""):
        self.dir = os.path.join(workdir, "thunderbird")
        self.home = os.path.join(self.dir, "home")
        self.profile = os.path.join(self.dir, "profile")
        self.log_path = os.path.join(self.dir, "thunderbird.log")
        os.makedirs(self.home, exist_ok=True)
        self.env = {**os.environ, "HOME": self.home, "MOZ_CRASHREPORTER_DISABLE": "1",
                    "MOZ_DISABLE_AUTO_SAFE_MODE": "1"}
        self._run(["thunderbird", "-CreateProfile", f"mailseal {self.profile}", "-headless"])
        if not os.path.isdir(self.profile):
            raise harness.HarnessError("thunderbird made no profile\n" + self.diagnostics())
        self.port = harness.free_port()
        self.folders = os.path.join(self.profile, "Mail", "Local Folders")
        os.makedirs(self.folders, exist_ok=True)
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            f.write(USER_JS.format(port=self.port, address=address, folders=self.folders,
                                   openpgp_key_id=openpgp_key_id))
        self.xvfb = None
        self.proc = None
        self.marionette = None
        self.display = None

    def _run(self, args):
        with open(self.log_path, "ab") as log:
            proc = subprocess.run(args, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log, timeout=START_TIMEOUT)
        if proc.returncode != 0:
            raise harness.HarnessError(f"{args[0]} exited {proc.returncode}\n"
                                       + self.diagnostics())

    def add_folder(self, name, messages):
        with open(os.path.join(self.folders, name), "wb") as f:
            f.write(mbox(messages))
        return "mailbox://nobody@Local%20Folders/" + name

    def start(self):
        display = next(f":{n}" for n in range(90, 140)
                       if not os.path.exists(f"/tmp/.X{n}-lock"))
        self.display = display
        log = open(self.log_path, "ab")
        try:
            self.xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1400x1000x24",
                                          "-nolisten", "tcp"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
            harness.wait_until(lambda: os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"), 30,
                               "Xvfb to start")
            self.proc = subprocess.Popen(
                ["thunderbird", "--marionette", "-remote-allow-system-access", "-profile",
                 self.profile, "-no-remote"], env={**self.env, "DISPLAY": display},
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.marionette = Marionette(self.port)
        self.marionette.command("WebDriver:NewSession", {"capabilities": {}})
        self.marionette.command("Marionette:SetContext", {"value": "chrome"})
        # The main window is up once gTabmail exists.
        harness.wait_until(lambda: self.script("return !!window.gTabmail && "
                                               "!!window.gTabmail.currentAbout3Pane;"),
                           START_TIMEOUT, "Thunderbird's main window", interval=0.5,
                           diagnostics=self.diagnostics)
        return self

    def import_pkcs12(self, p12, password, ca=None):
        """Imports an S/MIME certificate and its private key (PKCS#12) into the profile's NSS
        database, and `ca` as a trusted e-mail CA; before start()."""
        database = "sql:" + self.profile
        if not os.path.exists(os.path.join(self.profile, "cert9.db")):
            self._run(["certutil", "-N", "-d", database, "--empty-password"])
        self._run(["pk12util", "-i", p12, "-d", database, "-W", password])
        if ca is not None:
            self._run(["certutil", "-A", "-d", database, "-n", "mailseal test CA",
                       "-t", "C,C,C", "-i", ca])

    def import_secret_key(self, armoured):
        """Imports an armoured OpenPGP secret key (unprotected) into the profile."""
        result = self.script("""
const { RNP } = ChromeUtils.importESModule(
  "chrome://openpgp/content/modules/RNP.sys.mjs");
return RNP.importSecKeyBlockImpl(window, null, false, arguments[0]).then(res => ({
  exitCode: res.exitCode, imported: res.importedKeys, error: res.errorMsg || ""}));
""", [armoured])
        if result["exitCode"] or not result["imported"]:
            raise harness.HarnessError(f"Thunderbird did not import the key: {result}")
        return result["imported"]

    def script(self, text, args=()):
        return self.marionette.command("WebDriver:ExecuteScript",
                                       {"script": text, "args": list(args)})["value"]

    def list_subject(self, folder_uri, index, timeout=60):
        """The Subject the message list shows for message `index`."""
        return self._poll(LIST_SUBJECT, folder_uri, index, timeout)["subject"]

    def read(self, folder_uri, index, timeout=60):
        """What the message view shows for message `index` of the folder."""
        return self._poll(READ_MESSAGE, folder_uri, index, timeout)

    def _poll(self, script, folder_uri, index, timeout):
        last = {}

        def shown():
            nonlocal last
            last = self.script(script, [folder_uri, index])
            return None if "pending" in last else last

        return harness.wait_until(shown, timeout, f"message {index} to show",
                                  interval=0.5, diagnostics=lambda: f"{last}\n"
                                  + self.diagnostics())

    def screenshot(self, path):
        subprocess.run(["import", "-window", "root", path], env={
            **self.env, "DISPLAY": self.display}, check=False, timeout=30)

    def diagnostics(self):
        return "thunderbird log:\n" + harness.tail(harness.read_text(self.log_path))

    def stop(self):
        if self.marionette is not None:
            try:
                self.marionette.command("Marionette:Quit", {"flags": ["eForceQuit"]})
            except (harness.HarnessError, OSError):
                pass
            self.marionette.close()
            self.marionette = None
        for proc in (self.proc, self.xvfb):
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self.proc = None
        self.xvfb = None
