using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>
/// What a test thread changes about itself to be judged by the kernel as another user: its uid, groups and effective
/// capabilities, each by the raw system call, which changes the calling thread alone (the C library's wrappers change
/// every thread of the process, the test run's too). For <see cref="OnThreadOfItsOwn"/>, whose thread then ends.
/// </summary>
internal static partial class ThreadCredentials
{
    public const uint Nobody = 65534;
    public const uint NoGroup = 65534;
    public const uint DacOverride = 1u << 1;
    public const uint DacReadSearch = 1u << 2;

    private static bool Arm64 => RuntimeInformation.ProcessArchitecture == Architecture.Arm64;

    /// <summary>Runs <paramref name="action"/> on a thread without the two capabilities that let root read any file.</summary>
    public static T WithoutFileCapabilities<T>(Func<T> action) => OnThreadOfItsOwn.Run("without file capabilities", DropFileCapabilities, action);

    public static void DropFileCapabilities() => ChangeEffectiveCapabilities(remove: DacOverride | DacReadSearch);

    public static void ChangeEffectiveCapabilities(uint add = 0, uint remove = 0)
    {
        var header = new CapabilityHeader { Version = 0x20080522, Pid = 0 }; // _LINUX_CAPABILITY_VERSION_3, this thread
        var data = default(CapabilitySets);
        Assert.That(CapGet(ref header, ref data), Is.Zero, "capget");
        data.Effective0 = (data.Effective0 & ~remove) | add;
        Assert.That(CapSet(ref header, ref data), Is.Zero, $"capset: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Effective uid nobody; real and saved uid stay 0, so a permitted capability can be made effective again.</summary>
    public static void BecomeNobody()
    {
        Assert.That(Syscall(Arm64 ? 147 : 117, -1, Nobody, -1), Is.Zero, $"setresuid: errno {Marshal.GetLastPInvokeError()}");
        Assert.That(UserDatabase.EffectiveUid, Is.EqualTo(Nobody));
    }

    /// <summary>Nobody in exactly <paramref name="groups"/> (the first its effective gid), without file capabilities.</summary>
    public static void BecomeNobodyIn(params uint[] groups)
    {
        Assert.That(SetGroups(Arm64 ? 159 : 116, groups.Length, groups), Is.Zero, $"setgroups: errno {Marshal.GetLastPInvokeError()}");
        Assert.That(Syscall(Arm64 ? 149 : 119, -1, groups[0], -1), Is.Zero, $"setresgid: errno {Marshal.GetLastPInvokeError()}");
        BecomeNobody();
        DropFileCapabilities();
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long first, long second, long third);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SetGroups(long number, long count, uint[] groups);

    private struct CapabilityHeader
    {
        public uint Version;
        public int Pid;
    }

    // Two of struct __user_cap_data_struct: capabilities 0-31, then 32-63.
    private struct CapabilitySets
    {
        public uint Effective0;
        public uint Permitted0;
        public uint Inheritable0;
        public uint Effective1;
        public uint Permitted1;
        public uint Inheritable1;
    }

    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    private static partial int CapGet(ref CapabilityHeader header, ref CapabilitySets data);

    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    private static partial int CapSet(ref CapabilityHeader header, ref CapabilitySets data);
}
