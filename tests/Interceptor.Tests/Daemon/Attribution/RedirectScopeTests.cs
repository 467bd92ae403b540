using System.Net;
using Interceptor.Daemon.Attribution;
using Interceptor.Netfilter;

namespace Interceptor.Tests.Daemon.Attribution;

[TestFixture]
public class RedirectScopeTests
{
    private const uint Root = 0;
    private const uint Postfix = 101;
    private const uint Alice = 1001;
    private const uint Bob = 1002;
    private static readonly IPEndPoint Mx = IPEndPoint.Parse("192.0.2.25:25");
    private static readonly IPEndPoint OtherMx = IPEndPoint.Parse("192.0.2.26:25");

    private static readonly RedirectScope Scope = new([Root, Postfix], [new AllowedRoute(Alice, Mx.Address, Mx.Port)]);

    [Test]
    public void Exempt_users_are_never_redirected()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Scope.Redirects(Root, Mx), Is.False);
            Assert.That(Scope.Redirects(Postfix, OtherMx), Is.False);
        });
    }

    [Test]
    public void A_route_exempts_its_own_destination_only()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Scope.Redirects(Alice, Mx), Is.False, "alice's route to the MX goes out directly");
            Assert.That(Scope.Redirects(Alice, OtherMx), Is.True, "her other destinations are redirected");
            Assert.That(Scope.Redirects(Bob, Mx), Is.True, "another user's connection to her route is redirected");
        });
    }

    [Test]
    public void An_ipv4_mapped_destination_matches_the_ipv4_route()
    {
        var mapped = new IPEndPoint(Mx.Address.MapToIPv6(), Mx.Port);
        Assert.That(Scope.Redirects(Alice, mapped), Is.False);
    }

    [Test]
    public void With_nobody_exempt_every_socket_may_be_a_redirected_client() =>
        Assert.That(RedirectScope.Everybody.Redirects(Root, Mx), Is.True);
}
