using Interceptor.Daemon.Attribution;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>One client socket, one connection: a socket another connection holds is refused until it is given back.</summary>
[TestFixture]
public sealed class ClientSocketClaimsTests
{
    [Test]
    public void A_socket_is_held_by_one_connection_until_released()
    {
        var claims = new ClientSocketClaims();

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(4711), Is.True);
            Assert.That(claims.TryClaim(4711), Is.False, "another connection's client");
            Assert.That(claims.TryClaim(4712), Is.True, "a different socket");
            Assert.That(claims.Count, Is.EqualTo(2));
        });

        claims.Release(4711);

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(4711), Is.True, "given back, as when its connection ended");
            Assert.That(claims.Count, Is.EqualTo(2));
        });
    }

    [Test]
    public void Inode_zero_names_no_socket_and_is_never_held()
    {
        var claims = new ClientSocketClaims();

        Assert.Multiple(() =>
        {
            Assert.That(claims.TryClaim(0), Is.True);
            Assert.That(claims.TryClaim(0), Is.True);
            Assert.That(claims.Count, Is.Zero);
        });
    }
}
