using Interceptor.Daemon.Control;
using Interceptor.Linux;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>Who may use the control socket: root and the admin group, decided from kernel credentials and the group database.</summary>
[TestFixture]
public sealed class PeerAuthorizationTests
{
    private const uint Admins = 4242;

    [TestCase(0u, new uint[0], null, true, TestName = "root without an admin group")]
    [TestCase(0u, new uint[0], Admins, true, TestName = "root is admitted whatever its groups")]
    [TestCase(1001u, new[] { 1001u }, null, false, TestName = "a user without an admin group configured")]
    [TestCase(1001u, new[] { Admins }, Admins, true, TestName = "primary group in passwd is the admin group")]
    [TestCase(1001u, new[] { 1001u, 27u, Admins }, Admins, true, TestName = "supplementary member")]
    [TestCase(1001u, new[] { 1001u, 27u }, Admins, false, TestName = "member of other groups only")]
    [TestCase(65534u, new[] { 65534u }, Admins, false, TestName = "nobody")]
    [TestCase(1001u, new[] { 0u }, 0u, true, TestName = "admin group root admits its members")]
    public void Decision(uint uid, uint[] groups, uint? adminGid, bool admitted)
    {
        Assert.That(PeerAuthorization.Admits(uid, groups, adminGid), Is.EqualTo(admitted));
    }

    [Test]
    public void Root_decides_alone_and_everyone_else_by_the_databases_never_by_the_gid_the_kernel_reports()
    {
        // uid 1003 connects with the admin group's gid, taken in a user namespace from her /etc/subgid range (newgidmap):
        // the kernel reports it, the socket file's group permission let her connect, but she is no member.
        var asked = new List<uint>();
        var authorization = new PeerAuthorization("admins", Admins, uid =>
        {
            asked.Add(uid);
            return uid == 1001 ? [1001, Admins] : [uid];
        });

        Assert.Multiple(() =>
        {
            Assert.That(authorization.Admits(new PeerCredentials(1, 0, 0)), Is.True);
            Assert.That(authorization.Admits(new PeerCredentials(2, 1003, Admins)), Is.False, "a gid taken in a user namespace");
            Assert.That(authorization.Admits(new PeerCredentials(3, 1001, 1001)), Is.True);
            Assert.That(authorization.Admits(new PeerCredentials(4, 1002, 1002)), Is.False);
            Assert.That(asked, Is.EqualTo(new[] { 1003u, 1001u, 1002u }));
        });
    }

    [Test]
    public void A_failing_group_database_denies()
    {
        var authorization = new PeerAuthorization("admins", Admins, _ => throw new LinuxInteropException("getgrouplist", 5));

        Assert.That(authorization.Admits(new PeerCredentials(1, 1001, 1001)), Is.False);
    }

    [Test]
    public void Denial_names_the_group_or_says_root_only()
    {
        Assert.Multiple(() =>
        {
            Assert.That(
                new PeerAuthorization("mailadm", Admins, _ => []).DenialMessage,
                Is.EqualTo("permission denied: only root and members of group mailadm may use the control socket"));
            Assert.That(
                new PeerAuthorization("", null, _ => []).DenialMessage,
                Is.EqualTo("permission denied: only root may use the control socket (set Control.AdminGroup to admit a group)"));
        });
    }

    [Test]
    public void The_configured_group_is_resolved_by_name_or_number()
    {
        Assert.Multiple(() =>
        {
            Assert.That(PeerAuthorization.ForGroup("root").AdminGid, Is.EqualTo(0u));
            Assert.That(PeerAuthorization.ForGroup("").AdminGid, Is.Null);
            Assert.That(PeerAuthorization.ForGroup("4000000123").AdminGid, Is.EqualTo(4_000_000_123u));
        });
    }

    [Test]
    public void A_group_that_does_not_exist_is_a_configuration_error()
    {
        Assert.That(
            () => PeerAuthorization.ForGroup("no-such-group-xyz"),
            Throws.TypeOf<ControlSocketException>().With.Message.EqualTo("Control.AdminGroup: no such group \"no-such-group-xyz\" in the group database"));
    }
}
