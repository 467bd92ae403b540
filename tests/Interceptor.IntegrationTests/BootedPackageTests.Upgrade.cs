namespace Interceptor.IntegrationTests;

/// <summary>A secret file under the unit's sandbox, and an upgrade over a configuration the new version refuses.</summary>
public sealed partial class BootedPackageTests
{
    [Test]
    [Order(9)]
    public async Task A_bearer_token_file_is_read_under_the_units_sandbox_and_guards_the_metrics_endpoint()
    {
        // The reader reopens the file it judged through /proc/thread-self/fd: the unit's ProtectProc=invisible and
        // system-call filter must let it, as the daemon's user, with the package's account owning the file.
        await Container.CheckedAsync($$"""
            set -e
            printf 'booted-token-4711' > /etc/smtp-interceptor/metrics-token
            chown smtp-interceptor /etc/smtp-interceptor/metrics-token
            chmod 600 /etc/smtp-interceptor/metrics-token
            sed -i '0,/^{$/s//{\n  "Metrics": { "Listen": "127.0.0.1:9325", "BearerTokenFile": "\/etc\/smtp-interceptor\/metrics-token" },/' {{Config}}
            smtp-interceptor check-config --config {{Config}} >/dev/null
            systemctl restart smtp-interceptor
            """);
        var scrapes = await Container.CheckedAsync("""
            python3 - <<'EOF'
            import urllib.request, urllib.error
            for token in (None, 'booted-token-4711'):
                request = urllib.request.Request('http://127.0.0.1:9325/metrics', headers={'Authorization': 'Bearer ' + token} if token else {})
                try: print(urllib.request.urlopen(request, timeout=5).status, end=' ')
                except urllib.error.HTTPError as e: print(e.code, end=' ')
            EOF
            """);

        Assert.That(scrapes.Trim(), Is.EqualTo("401 200"), "without the token, then with it");
        Step($"Metrics.BearerTokenFile (smtp-interceptor's, 0600) read under the unit's sandbox: scrapes without and with the token: {scrapes.Trim()}");
    }

    [Test]
    [Order(10)]
    public async Task An_upgrade_over_a_configuration_this_version_refuses_names_the_problem_in_apts_output()
    {
        // " 4242" was a uid to Interception.ExemptUsers before names and uids were read one way; now it is refused. The
        // postinst's restart then fails, and without a word in apt's output only the journal would say why.
        await Container.CheckedAsync($$"""
            set -e
            cp {{Config}} /root/config.before-upgrade
            sed -i 's/"ExemptUsers": \[/"ExemptUsers": [" 4242", /' {{Config}}
            grep -q '" 4242"' {{Config}}
            """);
        var upgrade = await ReinstallAsync();
        var during = (await Container.ExecAsync($"echo \"$(systemctl is-active smtp-interceptor) $(runuser -u {Customer} -- python3 {Scripts}/probe.py)\"")).Stdout.Trim();

        // The same upgrade with the unit disabled and stopped by the admin: deb-systemd-invoke starts nothing, and the
        // postinst names the problems for the day it is started, without a word about a start that did not happen.
        await Container.CheckedAsync("systemctl disable --now smtp-interceptor 2>/dev/null; systemctl reset-failed smtp-interceptor 2>/dev/null || true");
        var whileDisabled = await ReinstallAsync();
        var stayedStopped = (await Container.ExecAsync("systemctl is-active smtp-interceptor; systemctl enable smtp-interceptor 2>/dev/null")).Stdout.Trim();

        // A token of the daemon's user, mode 0600, but under /root, which that user may not search: root's check-config
        // judges the directories for the unit's user and names the one that stops it.
        await TokenMovedToAsync("/root/metrics-token");
        var unsearchable = await ReinstallAsync();

        // In /tmp, which root finds and the daemon does not (its unit's PrivateTmp=yes): the postinst passes the unit's
        // sandbox to the check, which names it.
        await TokenMovedToAsync("/tmp/metrics-token");
        var sandboxed = await ReinstallAsync();

        // In a directory open to the package's group only (0710), with a drop-in's Group=mail: systemd then gives the daemon
        // mail and the groups the database lists it in, not its own; the postinst passes Group= to the check, which names it.
        await Container.CheckedAsync("""
            set -e
            install -d -o root -g smtp-interceptor -m 710 /etc/smtp-interceptor/group-dir
            mkdir -p /etc/systemd/system/smtp-interceptor.service.d
            printf '[Service]\nGroup=mail\n' > /etc/systemd/system/smtp-interceptor.service.d/group.conf
            systemctl daemon-reload
            """);
        await TokenMovedToAsync("/etc/smtp-interceptor/group-dir/metrics-token");
        var otherGroup = await ReinstallAsync();
        await Container.CheckedAsync("""
            set -e
            rm -r /etc/systemd/system/smtp-interceptor.service.d/group.conf /etc/smtp-interceptor/group-dir
            rmdir --ignore-fail-on-non-empty /etc/systemd/system/smtp-interceptor.service.d
            systemctl daemon-reload
            """);

        // What root's check-config cannot see: an ACL that shuts the daemon's user out of a directory whose mode lets
        // others in. The check passes, the restart fails, and apt's output gives the daemon's own words.
        await Container.CheckedAsync("""
            set -e
            install -d -m 755 /etc/smtp-interceptor/acl-dir
            python3 -c "import os, pwd, struct; uid = pwd.getpwnam('smtp-interceptor').pw_uid; e = lambda t, p, i: struct.pack('<HHI', t, p, i); os.setxattr('/etc/smtp-interceptor/acl-dir', 'system.posix_acl_access', struct.pack('<I', 2) + e(1, 7, 0xFFFFFFFF) + e(2, 0, uid) + e(4, 5, 0xFFFFFFFF) + e(0x10, 5, 0xFFFFFFFF) + e(0x20, 5, 0xFFFFFFFF))"
            """);
        await TokenMovedToAsync("/etc/smtp-interceptor/acl-dir/metrics-token");
        var shutByAcl = await ReinstallAsync();
        var restored = await Container.CheckedAsync($"""
            set -e
            cp /root/config.before-upgrade {Config}
            rm -r /root/metrics-token /tmp/metrics-token /etc/smtp-interceptor/acl-dir
            systemctl reset-failed smtp-interceptor
            systemctl restart smtp-interceptor
            systemctl is-active smtp-interceptor
            """);

        Assert.Multiple(() =>
        {
            Assert.That(upgrade.Succeeded, Is.True, "apt-get's reinstall itself succeeds\n" + upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain($"smtp-interceptor: this version refuses {Config}, so the daemon will not start"), upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain("  Interception.ExemptUsers[0]: no such user \" 4242\" in the user database (a uid is written in digits alone, without a sign or spaces)"), upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Contain("then run 'systemctl restart smtp-interceptor'"), upgrade.Describe());
            Assert.That(upgrade.Stdout, Does.Not.Contain("did not start after the upgrade"), "said once, by check-config" + upgrade.Describe());
            Assert.That(during, Does.Not.StartWith("active ").And.Not.Contain("fake-mx"), "the daemon did not start, and port 25 stayed closed to the customer");
            Assert.That(whileDisabled.Succeeded, Is.True, whileDisabled.Describe());
            Assert.That(whileDisabled.Stdout, Does.Contain($"smtp-interceptor: this version refuses {Config}; the unit is disabled, but it will not start until this is fixed:")
                .And.Contain("  Interception.ExemptUsers[0]: no such user \" 4242\"").And.Not.Contain("started all the same").And.Not.Contain("did not start"),
                "a disabled, stopped unit: its problems named, no start reported" + whileDisabled.Describe());
            Assert.That(stayedStopped, Is.EqualTo("inactive"), "the disabled unit was not started");
            Assert.That(unsearchable.Succeeded, Is.True, unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Contain($"smtp-interceptor: this version refuses {Config}"), "root's check-config judged /root for the daemon's user" + unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Match(@"    Metrics.BearerTokenFile: /root/metrics-token: the daemon's user \(uid \d+ \(smtp-interceptor\)\) may not search /root \(owner uid 0 \(root\), gid 0, mode 0700\); it must be able to search every directory on the path"), unsearchable.Describe());
            Assert.That(unsearchable.Stdout, Does.Not.Contain("did not start after the upgrade"), "said once, by check-config" + unsearchable.Describe());
            Assert.That(sandboxed.Succeeded, Is.True, sandboxed.Describe());
            Assert.That(sandboxed.Stdout, Does.Contain($"smtp-interceptor: this version refuses {Config}"), "the unit's sandbox passed to the check" + sandboxed.Describe());
            Assert.That(sandboxed.Stdout, Does.Contain("    Metrics.BearerTokenFile: /tmp/metrics-token: is under /tmp, which the daemon's unit hides from it or gives it its own of (ProtectHome=, PrivateTmp=); keep it under /etc/smtp-interceptor"), sandboxed.Describe());
            Assert.That(otherGroup.Stdout, Does.Match(@"    Metrics.BearerTokenFile: /etc/smtp-interceptor/group-dir/metrics-token: the daemon's user \(uid \d+ \(smtp-interceptor\)\) may not search /etc/smtp-interceptor/group-dir \(owner uid 0 \(root\), gid \d+, mode 0710\)"),
                "the unit's Group= passed to the check, in place of the account's group" + otherGroup.Describe());
            Assert.That(otherGroup.Stdout, Does.Not.Contain("started all the same"), "and systemd agrees: the daemon did not start" + otherGroup.Describe());
            Assert.That(shutByAcl.Succeeded, Is.True, shutByAcl.Describe());
            Assert.That(shutByAcl.Stdout, Does.Not.Contain("this version refuses"), "root's check-config leaves ACLs to the daemon's open" + shutByAcl.Describe());
            Assert.That(shutByAcl.Stdout, Does.Contain("smtp-interceptor: the daemon did not start after the upgrade, so port 25 stays closed to customers until it does; it said:"), shutByAcl.Describe());
            Assert.That(shutByAcl.Stdout, Does.Contain("/etc/smtp-interceptor/acl-dir/metrics-token: cannot be read: Permission denied; the daemon's user must be able to search every directory on the path"), shutByAcl.Describe());
            Assert.That(restored.Trim(), Is.EqualTo("active"), "the restored configuration starts the daemon for the next step");
        });
        Step($"apt-get reinstall over a refused configuration: apt said why; during it {Customer}'s port 25: {during}; with the unit disabled, its problems named and it stayed {stayedStopped}; over a token under /root, the check: "
            + unsearchable.Stdout.Split('\n').FirstOrDefault(l => l.Contains("/root/metrics-token:", StringComparison.Ordinal))?.Trim()
            + "; over a token in /tmp (the unit's own), the check: "
            + sandboxed.Stdout.Split('\n').FirstOrDefault(l => l.Contains("/tmp/metrics-token:", StringComparison.Ordinal))?.Trim()
            + "; under a drop-in's Group=mail, the check: "
            + otherGroup.Stdout.Split('\n').FirstOrDefault(l => l.Contains("group-dir/metrics-token:", StringComparison.Ordinal))?.Trim()
            + "; over one an ACL shuts the daemon out of, the daemon's words: "
            + shutByAcl.Stdout.Split('\n').FirstOrDefault(l => l.Contains("acl-dir/metrics-token:", StringComparison.Ordinal))?.Trim() + $"; restored: {restored.Trim()}");
    }

    // The configuration before the upgrade, with the token (the daemon's user's, 0600) at another path.
    private Task<string> TokenMovedToAsync(string path) => Container.CheckedAsync($$"""
        set -e
        cp /root/config.before-upgrade {{Config}}
        install -o smtp-interceptor -m 600 /etc/smtp-interceptor/metrics-token {{path}}
        sed -i 's|/etc/smtp-interceptor/metrics-token|{{path}}|' {{Config}}
        grep -q '{{path}}' {{Config}}
        """);

    private Task<ProcessResult> ReinstallAsync() =>
        Container.ExecAsync("apt-get install -y --reinstall --no-install-recommends /root/package.deb 2>&1", TimeSpan.FromMinutes(3));
}
