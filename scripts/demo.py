# SPDX-License-Identifier: Apache-2.0
"""The demo behind scripts/demo: Postfix -> mailseal (LMTP, SMIMEA and OPENPGPKEY keys from a
DNSSEC-signed zone served by NSD) -> sealed Maildir copies (S/MIME and PGP/MIME) -> Dovecot, and
OpenSSL and GnuPG opening sealed copies.

It reuses the integration tests' harness and DNS test bed, so the demo and the tests start the
peers the same way.
"""

import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import dnsbed  # noqa: E402
import harness  # noqa: E402

DEMO_DIR = os.environ.get("MAILSEAL_DEMO_DIR", "/tmp/mailseal-demo")
DOMAIN = "signed.test"
# alice publishes a certificate (SMIMEA 3 0 0), bob a bare public key (3 1 0), quinn an OpenPGP
# key (OPENPGPKEY), erin nothing.
USERS = ("alice", "bob", "quinn", "erin")
RECIPIENTS = [f"alice@{DOMAIN}", f"bob+newsletter@{DOMAIN}", f"quinn@{DOMAIN}", f"erin@{DOMAIN}"]


def say(text=""):
    print(text, flush=True)


def stop_leftovers(workdir):
    """A demo left running by --keep is stopped before a new one starts."""
    postfix_conf = os.path.join(workdir, "postfix", "etc")
    if os.path.isdir(postfix_conf):
        subprocess.run(["postfix", "-c", postfix_conf, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    for pid_file, command in ((os.path.join(workdir, "mailseal.pid"), "mailseal"),
                              (os.path.join(workdir, "dovecot", "run", "master.pid"), "dovecot")):
        try:
            harness.stop_pid(int(harness.read_text(pid_file).strip()), command)
        except ValueError:
            pass
    for pid in dnsbed.DnsTestBed(workdir).leftover_processes():
        harness.stop_pid(pid, "nsd")


def message(to, subject, body):
    return (f"From: Demo Sender <{harness.SENDER}>\n"
            f"To: {to}\n"
            f"Subject: {subject}\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            f"{body}\n").encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailseal", required=True, help="the mailseal binary")
    parser.add_argument("--keep", action="store_true", help="leave the daemons running")
    args = parser.parse_args()
    harness.MAILSEAL_BIN = os.path.abspath(args.mailseal)

    stop_leftovers(DEMO_DIR)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    os.makedirs(DEMO_DIR, mode=0o755)
    os.chmod(DEMO_DIR, 0o755)

    bed = dnsbed.DnsTestBed(DEMO_DIR)
    mailseal = postfix = dovecot = None
    try:
        bed.start()
        say(f"NSD serves the DNSSEC-signed zone {DOMAIN} on 127.0.0.1:{bed.port}; trust anchor: "
            f"{bed.anchor_file}")
        for address in RECIPIENTS:
            case = bed.case(address.replace("+newsletter", ""))
            say(f"  {case.address}: {case.purpose}")

        # mailseal runs as `mail` and Dovecot reads the Maildirs as `mail`: the setup
        # README.Debian describes (mail_uid = the user mailseal runs as).
        mailseal = harness.Mailseal(DEMO_DIR, {
            "mailbox": {"domains": [DOMAIN]},
            **bed.mailseal_overrides(),
        }, user="mail")
        mailseal.start()
        with open(os.path.join(DEMO_DIR, "mailseal.pid"), "w") as f:
            f.write(f"{mailseal.proc.pid}\n")
        say()
        say(f"mailseal is listening on {mailseal.unix_path} and 127.0.0.1:{mailseal.port}")
        say(f"  configuration: {mailseal.config_path}")
        lookup = subprocess.run([harness.MAILSEAL_BIN, "lookup", "--config", mailseal.config_path,
                                 RECIPIENTS[0]], capture_output=True, text=True, timeout=60)
        say(f"  mailseal lookup {RECIPIENTS[0]}:")
        for line in lookup.stdout.splitlines()[:4]:
            say("    " + line)

        postfix = harness.Postfix(DEMO_DIR, f"lmtp:unix:{mailseal.unix_path}",
                                  {"virtual_mailbox_domains": DOMAIN}).start()
        say(f"Postfix routes {DOMAIN} to it (virtual_transport = lmtp:unix:{mailseal.unix_path})")
        say()

        secret = "The meeting moved to Thursday. Grüße!"
        postfix.sendmail(harness.SENDER, RECIPIENTS,
                         message(", ".join(RECIPIENTS), "Hello from the mailseal demo", secret))
        say("Postfix's log:")
        for rcpt in RECIPIENTS:
            say("  " + postfix.wait_status(rcpt)["line"])

        say()
        say("mailseal's delivery log:")
        for line in mailseal.log().splitlines():
            if "event=delivery" in line or "event=key-lookup" in line:
                say("  " + line)

        say()
        say("What landed:")
        for user in USERS:
            for path in harness.maildir_files(mailseal.maildir(user, DOMAIN)):
                data = harness.read_bytes(path)
                where = "in clear" if secret.encode() in data else "nowhere in the file"
                mark = [line for line in data.decode("utf-8", "replace").splitlines()
                        if line.startswith("Mailseal:")]
                say(f"  {user}: {os.path.basename(path)}")
                say(f"    {mark[0] if mark else ''}; the body text is {where}")

        alice_file = harness.maildir_files(mailseal.maildir("alice", DOMAIN))[0]
        say()
        say(f"The top of alice's copy ({os.path.basename(alice_file)}):")
        with open(alice_file, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines()[:16]:
                say("  " + line)
        alice = bed.certs[f"alice@{DOMAIN}"]
        opened = subprocess.run(
            ["openssl", "cms", "-decrypt", "-recip", alice.pem, "-inkey", alice.key],
            stdin=open(alice_file, "rb"), capture_output=True, timeout=60)
        say()
        say("alice opens it with her private key (openssl cms -decrypt):")
        for line in opened.stdout.decode("utf-8", "replace").splitlines():
            say("  " + line)
        if secret.encode() not in opened.stdout:
            raise harness.HarnessError("alice's copy did not decrypt:\n" + opened.stderr.decode())

        quinn_file = harness.maildir_files(mailseal.maildir("quinn", DOMAIN))[0]
        say()
        say(f"quinn's copy is PGP/MIME ({os.path.basename(quinn_file)}); GnuPG opens it with "
            "quinn's secret key:")
        quinn_copy = harness.read_bytes(quinn_file).decode("utf-8", "replace")
        armour = quinn_copy[quinn_copy.index("-----BEGIN PGP MESSAGE-----"):]
        decrypted = bed.pgp.gpg("--decrypt", stdin=armour.encode(), check=False)
        for line in decrypted.stdout.decode("utf-8", "replace").splitlines():
            say("  " + line)
        if secret.encode() not in decrypted.stdout:
            raise harness.HarnessError("quinn's copy did not decrypt:\n"
                                       + decrypted.stderr.decode())

        dovecot = harness.Dovecot(DEMO_DIR, mailseal.vmail).start()
        say()
        say("Dovecot reads the mailboxes (doveadm fetch):")
        for user in USERS:
            for record in dovecot.fetch(f"{user}@{DOMAIN}",
                                        ("size.physical", "size.virtual", "hdr.subject")):
                say(f"  {user}: size.physical={record['size.physical']} "
                    f"size.virtual={record['size.virtual']} "
                    f"subject={record['hdr.subject'].strip().decode()}")
    finally:
        if not args.keep:
            for peer in (dovecot, postfix, mailseal):
                if peer is not None:
                    peer.stop()
            bed.stop()
    if args.keep:
        say()
        say(f"Left running under {DEMO_DIR}; scripts/demo stops them before it starts again.")
        say(f"To stop them now: kill {mailseal.proc.pid} {dovecot.pid} {bed.nsd.pid}; "
            f"postfix -c {postfix.config_dir} stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
