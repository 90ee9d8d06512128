; The Windows installer: a per-user NSIS setup for the PyInstaller onedir build (dist\noizylab).
;
;   makensis -DVERSION=0.1.0 -DAPPDIR=dist/noizylab -DOUTFILE=dist/NOIZYLAB-0.1.0-setup.exe packaging/windows/noizylab.nsi
;   (packaging/nsis.py does this and prints the size.)
;
; What it does: copies the app to %LOCALAPPDATA%\Programs\NOIZYLAB (no administrator rights), adds a Start-menu
; entry and an entry in Apps & features (HKCU), and writes an uninstaller. Installing over an older version first
; stops this user's node, then replaces the app folder whole, so no file of the old version stays behind. The
; user's config, state and logs (%LOCALAPPDATA%\noizylab, platformdirs' folders) are never touched by installing,
; and uninstalling keeps them unless the person ticks "Also remove my settings and data" (or passes /REMOVEDATA).
;
; Options for a silent install (/S):  /FIREWALL   add the Private-profile firewall rule (asks for elevation once)
; Options for the uninstaller (/S):   /REMOVEDATA  also remove %LOCALAPPDATA%\noizylab
Target amd64-unicode  ; the app is x64 only; an x86 setup would also need Wine's 32-bit support
!ifndef COMPRESSOR
  !define COMPRESSOR "lzma"  ; the release's: smallest. zlib packs in a fraction of the time (test builds).
!endif
SetCompressor /SOLID ${COMPRESSOR}
RequestExecutionLevel user

!ifndef VERSION
  !error "pass -DVERSION=x.y.z"
!endif
!ifndef APPDIR
  !error "pass -DAPPDIR=path\to\the\onedir\build"
!endif
!ifndef OUTFILE
  !define OUTFILE "NOIZYLAB-${VERSION}-setup.exe"
!endif

!define NAME "NOIZYLAB Desktop"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\NOIZYLAB"
!define FIREWALL_RULE "NOIZYLAB Desktop"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"

Name "${NAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\NOIZYLAB"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${NAME} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${NAME} installer"
VIAddVersionKey "LegalCopyright" "NOIZYLAB"

!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\noizylab.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${NAME} now"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "${NAME}" SecApp
  SectionIn RO
  SetShellVarContext current
  ; An older version's node holds its files open: stop it first (this user's default node; nothing if none runs).
  ${If} ${FileExists} "$INSTDIR\noizylab-cli.exe"
    DetailPrint "Stopping the running node of the installed version"
    nsExec::ExecToLog '"$INSTDIR\noizylab-cli.exe" stop'
    Pop $0
  ${EndIf}
  ; The whole app folder is replaced: files an older version had and this one does not would otherwise stay.
  RMDir /r "$INSTDIR\_internal"
  SetOutPath "$INSTDIR"
  File /r "${APPDIR}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortCut "$SMPROGRAMS\${NAME}.lnk" "$INSTDIR\noizylab.exe" "" "$INSTDIR\noizylab.exe" 0
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "NOIZYLAB"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\noizylab.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

; Off by default: the grid's peers reach this machine on its gRPC and SFTP ports, which Windows Firewall asks about
; on first use anyway. Ticked (or /FIREWALL), the rule is added for Private networks only, with one elevation prompt.
Section /o "Allow on private networks (Windows Firewall)" SecFirewall
  ExecShellWait "runas" "$SYSDIR\netsh.exe" 'advfirewall firewall add rule name="${FIREWALL_RULE}" dir=in action=allow program="$INSTDIR\noizylab.exe" enable=yes profile=private' SW_HIDE
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "FirewallRule" 1
SectionEnd

Function .onInit
  SetShellVarContext current
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/FIREWALL" $R1
  ${IfNot} ${Errors}
    SectionSetFlags ${SecFirewall} ${SF_SELECTED}
  ${EndIf}
FunctionEnd

Section "-un.${NAME}"
  SetShellVarContext current
  nsExec::ExecToLog '"$INSTDIR\noizylab-cli.exe" stop'
  Pop $0
  ReadRegDWORD $0 HKCU "${UNINSTALL_KEY}" "FirewallRule"
  ${If} $0 = 1
    ExecShellWait "runas" "$SYSDIR\netsh.exe" 'advfirewall firewall delete rule name="${FIREWALL_RULE}"' SW_HIDE
  ${EndIf}
  Delete "$SMPROGRAMS\${NAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\noizylab.exe"
  Delete "$INSTDIR\noizylab-cli.exe"
SectionEnd

Section /o "un.Also remove my settings and data" SecRemoveData
  ; %LOCALAPPDATA%\noizylab: config.toml, the trust store, task history, sync index and logs. The keychain
  ; entries (Windows Credential Manager) are left.
  RMDir /r "$LOCALAPPDATA\noizylab"
SectionEnd

; Last, so that the folder and the Apps entry going away means the whole uninstall is done.
Section "-un.finish"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd

Function un.onInit
  SetShellVarContext current
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/REMOVEDATA" $R1
  ${IfNot} ${Errors}
    SectionSetFlags ${SecRemoveData} ${SF_SELECTED}
  ${EndIf}
FunctionEnd
