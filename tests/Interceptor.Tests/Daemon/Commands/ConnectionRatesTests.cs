using Interceptor.Core.Options;
using Interceptor.Daemon.Commands;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Commands;

public class ConnectionRatesTests
{
    private static readonly Dictionary<string, uint> Users = new(StringComparer.Ordinal) { ["alice"] = 1001, ["bob"] = 1002, ["carol"] = 1003 };

    [Test]
    public void The_default_is_20_a_second_with_a_burst_of_50()
    {
        Assert.That(ConnectionRates.Default(new LimitsOptions()), Is.EqualTo(new ConnectionRate(20, 50)));
    }

    [Test]
    public void A_default_of_0_is_no_limit()
    {
        var limits = new LimitsOptions { Default = QuotaLimits.Defaults with { ConnectionsPerSecond = 0 } };

        Assert.That(ConnectionRates.Default(limits), Is.Null);
    }

    [Test]
    public void Only_overrides_that_set_a_connection_key_get_an_own_rate_the_other_key_following_the_default()
    {
        var limits = new LimitsOptions
        {
            Default = QuotaLimits.Defaults with { ConnectionsPerSecond = 10, ConnectionsBurst = 30 },
            Users = new Dictionary<string, QuotaLimits>
            {
                ["alice"] = new() { ConnectionsPerSecond = 2 },
                ["bob"] = new() { MessagesPerHour = 5 },
                ["carol"] = new() { ConnectionsPerSecond = 0 },
            },
        };
        var errors = new List<string>();

        var rates = ConnectionRates.PerUser(limits, errors, name => Users.TryGetValue(name, out var uid) ? uid : null);

        Assert.That(errors, Is.Empty);
        Assert.That(rates, Is.EqualTo(new[] { new UidConnectionRate(1001, new(2, 30)), new UidConnectionRate(1003, null) }));
    }

    [Test]
    public void An_override_for_an_unknown_user_is_an_error_naming_its_key()
    {
        var limits = new LimitsOptions { Users = new Dictionary<string, QuotaLimits> { ["mallory"] = new() { ConnectionsBurst = 3 } } };
        var errors = new List<string>();

        var rates = ConnectionRates.PerUser(limits, errors, _ => null);

        Assert.That(rates, Is.Empty);
        Assert.That(errors, Has.One.StartsWith("Limits.Users.mallory: no such user"));
    }

    [Test]
    public void The_validator_refuses_a_zero_burst_and_a_negative_rate()
    {
        var options = new InterceptorOptions
        {
            Limits = new LimitsOptions
            {
                Default = QuotaLimits.Defaults with { ConnectionsBurst = 0 },
                Users = new Dictionary<string, QuotaLimits> { ["alice"] = new() { ConnectionsPerSecond = -1 } },
            },
        };

        var errors = OptionsValidator.Validate(options);

        Assert.That(errors, Has.Some.Contains("Limits.Default.ConnectionsBurst"));
        Assert.That(errors, Has.Some.Contains("Limits.Users.alice.ConnectionsPerSecond"));
    }
}
