# vigil fact batch: one frame per request, see package shellbatch
{
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}; export PATH
_vnl='
'
IFS=" 	$_vnl"
M='VIGIL-00112233445566778899aabbccddeeff'
echo "$M start $(date +%s%N)"
_vT=$(mktemp -d 2>/dev/null) || _vT=$(mktemp -d /dev/shm/vigil.XXXXXXXX 2>/dev/null) || { echo "$M fatal"; exit 1; }
trap 'rm -rf "$_vT"' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
_vto=; command -v timeout >/dev/null 2>&1 && _vto=1
_vn=0; _vb=0; _vw=0; _vPL=; _vSL=; _vFL=; _v1=
_vfmt='%n\0%f\0%u\0%g\0%s\0%U\0%G\0'
_vadd() { _vpi=$_vn; _vn=$((_vn+1)); _vPL="$_vPL $1"; }
_vnew() { _vadd "p$_vn"; _vpf=$_vT/p$_vpi; : >"$_vpf"; }
_vW() { for _vj; do [ -s "$_vj" ] && _vw=$((_vw+1)); done; }
_vP() {
  [ -n "$_vPL" ] || return 0
  set --; for _vj in $_vPL; do set -- "$@" "$_vT/$_vj"; done
  echo "$M pool $_vb b"
  printf 'k '; stat --printf '%s ' -- "$@"; echo
  printf 'z '; cat -- "$@" | base64 -w 0; echo
  echo "$M pool $_vb e"
  for _vj; do : >"$_vj"; done
  _vb=$_vn; _vPL=; _vw=0
}
_vf() { [ "$_vw" -lt 32 ] && [ $((_vn-_vb)) -lt 1024 ] || _vP; }
_v1() {
  _v1=1
  stat -L --printf "$_vfmt" -- "$1" >>"$_vT/s1r" 2>"$_vT/sx" && return 0
  printf '%s\0' "$1" >>"$_vT/s1n"
  _vl=; IFS= read -r _vl <"$_vT/sx"
  printf '%s\n' "${_vl:-stat: failed without a message}" >>"$_vT/s1e"
}
_va() {
  case $1 in *"$_vnl"*) _v1 "$1"; return 0;; esac
  if [ -e "$1" ]; then _vSL=$_vSL$1$_vnl; else _vFL=$_vFL$1$_vnl; fi
}
_vs() { echo "$M $1 b"; _va "$2"; echo "$M $1 e"; }
_vg() {
  _vf; _vi=$1; shift
  echo "$M $_vi b"
  if [ $# -gt 1 ] || [ -e "$1" ] || [ -L "$1" ]; then
    _vnew; printf '%s\0' "$@" >"$_vpf"; echo "g $_vpi"
    for _vp; do _va "$_vp"; done
  fi
  echo "$M $_vi e"
}
_vrd() {
  if [ -p "$1" ]; then echo "f 1"; return 0; fi
  if [ ! -e "$1" ]; then _va "$1"; echo "m 1"; return 0; fi
  _vnew; _vd=$_vpi; _vnew
  if head -c 4194305 -- "$1" >"$_vT/p$_vd" 2>"$_vpf"; then echo "d $_vd"; else echo "x $_vpi"; fi
  _vW "$_vT/p$_vd" "$_vpf"
}
_vr() { _vf; echo "$M $1 b"; _vrd "$2"; echo "$M $1 e"; }
_vG() {
  _vf; _vi=$1; _vmode=$2; shift 2
  echo "$M $_vi b"
  : >"$_vT/g$_vi"
  for _vp; do
    [ -f "$_vp" ] || continue
    printf '%s\0' "$_vp" >>"$_vT/g$_vi"
    if [ "$_vmode" = c ]; then _vrd "$_vp"; _vf; fi
  done
  _vadd "g$_vi"; echo "n $_vpi"
  echo "$M $_vi e"
}
_vS() {
  _vf
  echo "$M stat b"
  if [ -n "$_vSL" ]; then
    IFS=$_vnl; set -f; set -- $_vSL; IFS=" 	$_vnl"; set +f
    _vnew
    if stat -L --printf "$_vfmt" -- "$@" >"$_vpf" 2>"$_vT/sx" && [ ! -s "$_vT/sx" ]; then echo "r $_vpi"
    else for _vp; do _v1 "$_vp"; done; fi
  fi
  if [ -n "$_vFL" ]; then
    IFS=$_vnl; set -f; set -- $_vFL; IFS=" 	$_vnl"; set +f
    _vnew; _vq=$_vpi; printf '%s\0' "$@" >"$_vpf"
    _vnew; stat -L --printf "$_vfmt" -- "$@" >"$_vT/sx" 2>"$_vpf"
    if [ $? -eq 1 ] && [ ! -s "$_vT/sx" ]; then echo "fn $_vq"; echo "fe $_vpi"
    else for _vp; do _v1 "$_vp"; done; fi
  fi
  if [ -n "$_v1" ]; then
    : >>"$_vT/s1r"; : >>"$_vT/s1n"; : >>"$_vT/s1e"
    _vadd s1r; echo "r $_vpi"; _vadd s1n; echo "fn $_vpi"; _vadd s1e; echo "fe $_vpi"
  fi
  echo "$M stat e"
}
_vclk() {
  if [ -n "$_vck" ] && echo now >&8 && IFS= read -r _vnow <&9; then
    case $_vnow in ''|*[!0-9]*) ;; *) return 0;; esac
  fi
  if [ -n "$_vck" ]; then _vck=; exec 8>&- 9<&-; fi
  _vnow=$(date +%s%N)
}
_vcap() {
  exec 4>&- 5>&- 6<&- 7<&- 8>&- 9<&-
  dd bs=4194305 count=1 iflag=fullblock of="$1" 2>"$2"
  _vl=; read -r _vl <"$2"
  case $_vl in "0+"[01]" records in") ;; *) exec cat >/dev/null;; esac
}
_vx() {
  _vf
  echo "$M $1 b"
  _vnew; _vo=$_vpi; _vnew; _ve=$_vpi
  exec 4<>"$_vT/fo" 6<"$_vT/fo" 5<>"$_vT/fe" 7<"$_vT/fe"
  _vcap "$_vT/p$_vo" "$_vT/do" <&6 & _vj1=$!
  _vcap "$_vT/p$_ve" "$_vT/de" <&7 & _vj2=$!
  _vclk; _vt0=$_vnow
  if [ -n "$_vto" ]; then timeout -k 2 "$2" sh -c "$3"; else sh -c "$3"; fi </dev/null >"$_vT/fo" 2>"$_vT/fe" 4>&- 5>&- 6<&- 7<&- 8>&- 9<&-
  _vc=$?
  exec 4>&- 5>&- 6<&- 7<&-
  wait $_vj1 $_vj2
  _vclk
  echo "c $_vc"; echo "t $_vt0 $_vnow"; echo "o $_vo"; echo "e $_ve"
  echo "$M $1 e"
  _vW "$_vT/p$_vo" "$_vT/p$_ve"
}
_vk() {
  _vf
  echo "$M $1 b"
  if [ -e /var/lib/dpkg/status ]; then
    _vnew; _vo=$_vpi; _vnew
    grep -E '^(Package|Status|Version):|^$' /var/lib/dpkg/status >"$_vT/p$_vo" 2>"$_vpf"
    echo "dc $?"; echo "d $_vo"; echo "de $_vpi"
    _vW "$_vT/p$_vo"
  fi
  if command -v rpm >/dev/null 2>&1; then
    _vnew; _vo=$_vpi; _vnew
    rpm -qa --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n' </dev/null >"$_vT/p$_vo" 2>"$_vpf"
    echo "rc $?"; echo "r $_vo"; echo "re $_vpi"
    _vW "$_vT/p$_vo"
  fi
  echo "$M $1 e"
}
_vu() {
  _vf
  echo "$M $1 b"
  if ! command -v systemctl >/dev/null 2>&1; then echo "y 0"
  else
    echo "y 1"
    _vnew; systemctl is-enabled -- "$2" </dev/null >"$_vpf" 2>/dev/null; echo "ec $?"; echo "en $_vpi"
    if [ -d /run/systemd/system ]; then
      _vnew; systemctl is-active -- "$2" </dev/null >"$_vpf" 2>/dev/null; echo "ac $?"; echo "an $_vpi"
    fi
  fi
  echo "$M $1 e"
}
_vm() {
  _vf
  echo "$M $1 b"
  if grep -q -E "^$2 " /proc/modules 2>/dev/null; then echo "l 1"; else echo "l 0"; fi
  if grep -q -E "/$2"'\.ko(\.(xz|zst|gz))?$' "$_vT/m" 2>/dev/null; then echo "a 1"; else echo "a 0"; fi
  if grep -q -E "/$2"'\.ko$' "/lib/modules/$(uname -r)/modules.builtin" 2>/dev/null; then echo "bi 1"; else echo "bi 0"; fi
  echo "$M $1 e"
}
mkfifo "$_vT/fo" "$_vT/fe" "$_vT/ci" "$_vT/co" 2>/dev/null || { echo "$M fatal"; exit 1; }
_vck=
if [ -n "$_vto" ] && command -v stdbuf >/dev/null 2>&1; then
  exec 8<>"$_vT/ci" 7<"$_vT/ci" 9<>"$_vT/co"
  stdbuf -oL date -f - +%s%N <&7 >"$_vT/co" 2>/dev/null 7<&- 8>&- 9<&- &
  exec 7<&-
  echo now >&8
  _vck=$(timeout 2 head -n 1 <&9 2>/dev/null)
  case $_vck in
  ''|*[!0-9]*) _vck=; exec 8>&- 9<&-;;
  *) exec 7<"$_vT/co"; exec 9<&7 7<&-;;
  esac
fi
find "/lib/modules/$(uname -r)/" -type f -name '*.ko*' >"$_vT/m" 2>/dev/null
_vr 0 '/etc/hostname'
_vg 1 '/etc/ssh/'*'.conf'
_vG 2 c '/etc/sysctl.d/'*'.conf'
_vr 7 '/it'\''s here'
_vS
_vx 3 10 'sshd -T'
_vk 4
_vu 5 'sshd.service'
_vm 6 'usb[-_]storage'
_vP
echo "$M done"
} </dev/null
